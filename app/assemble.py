"""Execute a read plan: encode entity keys, read the store once, build the columns.

Statuses, per output value:
  PRESENT          the value was found and is within its view's ttl
  NOT_FOUND        no record for this entity (or the record lacks the feature): null
  NULL_VALUE       the stored value is null
  OUTSIDE_MAX_AGE  the record is older than the view's ttl: null, with its timestamp

The usual case, every record found and fresh and every value present, is built a column
at a time with C-level list operations; anything else falls back to a row-by-row path
for just the view or column concerned.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import msgspec

from app.on_demand import run_transform
from app.resolve import FeatureSlot, ReadPlan, ViewRead
from app.schemas import FeatureVector, GetOnlineFeaturesResponse
from stores import codec, timestamps
from stores.base import OnlineStore, ReadBatch
from stores.keys import distinct_keys
from stores.vectors import array_header

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
NULL_VALUE = "NULL_VALUE"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
EPOCH = timestamps.EPOCH_TEXT
_MISSING = object()
#: Records of one view, decoded in one call from their blobs joined as a MessagePack array.
_records = msgspec.msgpack.Decoder(list[tuple[int, dict[str, Any]]])
_first = itemgetter(0)
_second = itemgetter(1)
_format_us = timestamps.format_us

Decoded = tuple[str, bool, dict[str, Any]] | None  # (timestamp text, stale, values)


async def read_online_features(
    plan: ReadPlan, columns: list[list[Any]], rows: int, store: OnlineStore, now_us: int
) -> GetOnlineFeaturesResponse:
    """``columns`` are the coerced entity values, in ``plan.entity_names`` order."""
    batches: list[ReadBatch] = []
    fan_outs: list[list[int] | None] = []  # per group: row -> distinct key, or None if 1:1
    for group in plan.groups:
        keys, fan_out = distinct_keys(group.encode, [columns[i] for i in group.key_columns])
        batches.append(ReadBatch(keys, group.view_names))
        fan_outs.append(fan_out)

    stored = await store.read(batches) if batches else []

    results: list[FeatureVector | None] = [None] * plan.column_count
    present_entities = [PRESENT] * rows
    epochs = [EPOCH] * rows
    for i, entity_values in enumerate(columns):
        results[i] = FeatureVector(entity_values, present_entities, epochs)

    # With transforms, values reach them unconverted (and as lists): row by row.
    convert = not plan.transforms
    for group, fan_out, records in zip(plan.groups, fan_outs, stored, strict=True):
        for v, read in enumerate(group.views):
            blobs = [per_key[v] for per_key in records]
            if (
                convert
                and None not in blobs
                and _fresh_view(read, blobs, fan_out, rows, now_us, results)
            ):
                continue
            decoded = _decode_each(read, blobs, now_us)
            if fan_out is not None:
                decoded = [decoded[p] for p in fan_out]
            for slot in read.slots:
                results[slot.column] = _slow_column(slot, decoded, convert)

    if plan.transforms:
        entity_columns = dict(zip(plan.entity_names, columns, strict=True))
        for step in plan.transforms:
            run_transform(step, results, entity_columns, rows)
        for column, late_convert in plan.late_converts:
            vector = results[column]
            assert vector is not None
            vector.values = [late_convert(v) for v in vector.values]
    shown = results if plan.output_columns is None else [results[i] for i in plan.output_columns]
    return GetOnlineFeaturesResponse(results=shown, metadata=plan.metadata)  # type: ignore[arg-type]


def _fresh_view(
    read: ViewRead,
    blobs: list[bytes | None],
    fan_out: list[int] | None,
    rows: int,
    now_us: int,
    results: list[FeatureVector | None],
) -> bool:
    """Fill the view's columns when every entity has a fresh record holding every
    feature asked for; False otherwise, leaving the view to the row-by-row path."""
    decoded = _records.decode(array_header(len(blobs)) + b"".join(blobs))  # type: ignore[arg-type]
    event_times = list(map(_first, decoded))
    if read.ttl_us > 0 and now_us - min(event_times) > read.ttl_us:
        return False
    records = list(map(_second, decoded))
    try:
        by_row = list(map(read.values_of, records))
    except KeyError:
        return False
    stamps = timestamps.format_many(event_times)
    if fan_out is not None:
        by_row = [by_row[p] for p in fan_out]
        stamps = [stamps[p] for p in fan_out]
        records = [records[p] for p in fan_out]
    columns: list[Sequence[Any]] = list(zip(*by_row, strict=True))
    for i, convert in read.column_converters:
        if None not in columns[i]:
            columns[i] = convert(columns[i])
    statuses = [PRESENT] * rows
    vectors = list(map(FeatureVector, columns, repeat(statuses), repeat(stamps)))
    if any(None in row for row in by_row):  # nulls: those columns row by row
        rows_decoded: list[Decoded] = [
            (stamp, False, r) for stamp, r in zip(stamps, records, strict=True)
        ]
        for i, slot in enumerate(read.slots):
            if None in columns[i]:
                vectors[i] = _slow_column(slot, rows_decoded, True)
    if read.first_column is not None:
        results[read.first_column : read.first_column + len(vectors)] = vectors
    else:
        for slot, vector in zip(read.slots, vectors, strict=True):
            results[slot.column] = vector
    return True


def _decode_each(read: ViewRead, blobs: list[bytes | None], now_us: int) -> list[Decoded]:
    """Each distinct entity's record decoded once, with its staleness."""
    decoded: list[Decoded] = []
    for blob in blobs:
        if blob is None:
            decoded.append(None)
            continue
        event_ts, stored_values = codec.decode_record(blob)
        stale = read.ttl_us > 0 and now_us - event_ts > read.ttl_us
        decoded.append((_format_us(event_ts), stale, stored_values))
    return decoded


def _slow_column(slot: FeatureSlot, decoded: list[Decoded], convert: bool) -> FeatureVector:
    out_values: list[Any] = []
    out_statuses: list[str] = []
    out_ts: list[str] = []
    feature = slot.feature
    to_output = slot.convert if convert else None
    for record in decoded:
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
            out_values.append(to_output(value) if to_output else value)
            out_statuses.append(PRESENT)
    return FeatureVector(out_values, out_statuses, out_ts)
