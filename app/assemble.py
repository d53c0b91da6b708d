"""Execute a read plan: encode entity keys, read the store once, build the columns.

Statuses, per output value:
  PRESENT          the value was found and is within its view's ttl
  NOT_FOUND        no record for this entity (or the record lacks the feature): null
  NULL_VALUE       the stored value is null
  OUTSIDE_MAX_AGE  the record is older than the view's ttl: null, with its timestamp
"""

from __future__ import annotations

from typing import Any

from app.on_demand import run_transform
from app.resolve import ReadPlan
from app.schemas import FeatureVector, GetOnlineFeaturesResponse
from stores import codec, timestamps
from stores.base import OnlineStore, ReadBatch

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
NULL_VALUE = "NULL_VALUE"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
EPOCH = timestamps.EPOCH_TEXT
_MISSING = object()


async def read_online_features(
    plan: ReadPlan, columns: list[list[Any]], rows: int, store: OnlineStore, now_us: int
) -> GetOnlineFeaturesResponse:
    """``columns`` are the coerced entity values, in ``plan.entity_names`` order."""
    batches: list[ReadBatch] = []
    row_to_key: list[list[int]] = []
    for group in plan.groups:
        key_values = [columns[i] for i in group.key_columns]
        distinct: dict[bytes, int] = {}
        positions = []
        for values in zip(*key_values, strict=True):
            key = group.encode(values)
            positions.append(distinct.setdefault(key, len(distinct)))
        batches.append(ReadBatch(list(distinct), group.view_names))
        row_to_key.append(positions)

    stored = await store.read(batches) if batches else []

    results: list[FeatureVector | None] = [None] * plan.column_count
    present_entities = [PRESENT] * rows
    epochs = [EPOCH] * rows
    for i, entity_values in enumerate(columns):
        results[i] = FeatureVector(entity_values, present_entities, epochs)

    for group, positions, records in zip(plan.groups, row_to_key, stored, strict=True):
        for v, read in enumerate(group.views):
            # Decode each distinct entity's record once, then fan out to its rows.
            decoded: list[tuple[str, bool, dict[str, Any]] | None] = []
            for per_view in records:
                blob = per_view[v]
                if blob is None:
                    decoded.append(None)
                    continue
                event_ts, stored_values = codec.decode_record(blob)
                stale = read.ttl_us > 0 and now_us - event_ts > read.ttl_us
                decoded.append((timestamps.format_us(event_ts), stale, stored_values))
            for slot in read.slots:
                out_values: list[Any] = []
                out_statuses: list[str] = []
                out_ts: list[str] = []
                feature = slot.feature
                convert = None if plan.transforms else slot.convert
                for position in positions:
                    record = decoded[position]
                    if record is None:
                        out_values.append(None)
                        out_statuses.append(NOT_FOUND)
                        out_ts.append(EPOCH)
                        continue
                    ts_text, stale, stored_values = record
                    out_ts.append(ts_text)
                    value = stored_values.get(feature, _MISSING)
                    if stale:
                        out_values.append(None)
                        out_statuses.append(OUTSIDE_MAX_AGE)
                    elif value is _MISSING:
                        out_values.append(None)
                        out_statuses.append(NOT_FOUND)
                    elif value is None:
                        out_values.append(None)
                        out_statuses.append(NULL_VALUE)
                    else:
                        out_values.append(convert(value) if convert else value)
                        out_statuses.append(PRESENT)
                results[slot.column] = FeatureVector(out_values, out_statuses, out_ts)

    if plan.transforms:
        entity_columns = dict(zip(plan.entity_names, columns, strict=True))
        for step in plan.transforms:
            run_transform(step, results, entity_columns, rows)
        for column, convert in plan.late_converts:
            vector = results[column]
            assert vector is not None
            vector.values = [convert(v) for v in vector.values]
    shown = results if plan.output_columns is None else [results[i] for i in plan.output_columns]
    return GetOnlineFeaturesResponse(results=shown, metadata=plan.metadata)  # type: ignore[arg-type]
