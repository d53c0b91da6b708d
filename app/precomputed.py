"""Read a feature service from its precomputed vectors (see stores.vectors).

The response is exactly what reading the service view by view gives (same columns,
values, statuses and timestamps), built with less work per entity: one decode, then the
values of each run appended as they are stored, already in output order and converted.
Per-view ttls are checked against each run's event time, so a stale view still shows
``OUTSIDE_MAX_AGE``. Rows are built per entity, then turned into columns by ``zip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from app.errors import ApiError
from app.schemas import FeatureVector, GetOnlineFeaturesResponse, ResponseMetadata
from registry.model import FeatureServiceSpec, RegistrySnapshot
from stores import vectors
from stores.base import OnlineStore, ReadBatch
from stores.keys import KeyEncoder
from stores.precompute import VectorLayout, vector_layout
from stores.timestamps import EPOCH_TEXT

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
NULL_VALUE = "NULL_VALUE"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
_STATUS = {"P": PRESENT, "N": NULL_VALUE, "F": NOT_FOUND}
_decoder = msgspec.msgpack.Decoder()

#: One entity's output: values, statuses and event timestamps, in output order.
Row = tuple[list[Any], list[str], list[str]]


@dataclass(frozen=True, slots=True)
class RunRead:
    """A run's ttl and the constant pieces a row is built from."""

    ttl_us: int
    count: int
    nulls: list[None]
    present: list[str]
    not_found: list[str]
    outside: list[str]
    epochs: list[str]


@dataclass(frozen=True, slots=True)
class PrecomputedRead:
    service: str
    fields: tuple[str]
    tag: bytes
    prefix: int  # bytes before the runs
    key_columns: tuple[int, ...]  # entity columns, in the key encoder's order
    encode: KeyEncoder
    runs: tuple[RunRead, ...]
    all_present: list[str]
    missing: Row  # an entity without a vector


def stale_error(service: str, problem: str) -> ApiError:
    return ApiError(
        503,
        "precompute_stale",
        ["body", "feature_service"],
        f"feature service {service!r}: {problem}; run `ladle precompute {service}` to "
        "rebuild its precomputed vectors",
        service,
    )


def precomputed_read(
    snapshot: RegistrySnapshot,
    service: FeatureServiceSpec,
    key_columns: tuple[int, ...],
    encode: KeyEncoder,
) -> PrecomputedRead:
    """The read of a built service; a 503 naming ``ladle precompute`` if it is not built
    for the service's current definition."""
    layout: VectorLayout = vector_layout(snapshot, service)
    built = snapshot.precomputed.get(service.name)
    if built != layout.fingerprint:
        problem = (
            "its precomputed vectors were never built"
            if built is None
            else "its definition changed since its precomputed vectors were built"
        )
        raise stale_error(service.name, problem)
    runs = tuple(
        RunRead(
            run.ttl_us,
            len(run.features),
            [None] * len(run.features),
            [PRESENT] * len(run.features),
            [NOT_FOUND] * len(run.features),
            [OUTSIDE_MAX_AGE] * len(run.features),
            [EPOCH_TEXT] * len(run.features),
        )
        for run in layout.runs
    )
    width = sum(run.count for run in runs)
    return PrecomputedRead(
        service=service.name,
        fields=(layout.field,),
        tag=layout.tag,
        prefix=vectors.prefix_length(len(runs)),
        key_columns=key_columns,
        encode=encode,
        runs=runs,
        all_present=[PRESENT] * width,
        missing=([None] * width, [NOT_FOUND] * width, [EPOCH_TEXT] * width),
    )


async def read_precomputed(
    pre: PrecomputedRead,
    metadata: ResponseMetadata,
    columns: list[list[Any]],
    rows: int,
    store: OnlineStore,
    now_us: int,
) -> GetOnlineFeaturesResponse:
    """``columns`` are the coerced entity values, all of them join keys."""
    distinct: dict[bytes, int] = {}
    positions = []
    encode = pre.encode
    for values in zip(*[columns[i] for i in pre.key_columns], strict=True):
        positions.append(distinct.setdefault(encode(values), len(distinct)))
    (found,) = await store.read([ReadBatch(list(distinct), pre.fields)])
    by_key = [_entity_row(pre, stored[0], now_us) for stored in found]
    chosen = by_key if len(by_key) == rows else [by_key[p] for p in positions]

    present_rows = [PRESENT] * rows
    results = [FeatureVector(values, present_rows, [EPOCH_TEXT] * rows) for values in columns]
    value_columns = zip(*[row[0] for row in chosen], strict=True)
    ts_columns = zip(*[row[2] for row in chosen], strict=True)
    status_columns: Any
    if all(row[1] is pre.all_present for row in chosen):
        status_columns = [present_rows] * len(pre.all_present)
    else:
        status_columns = zip(*[row[1] for row in chosen], strict=True)
    results += [
        FeatureVector(list(v), list(s), list(t))
        for v, s, t in zip(value_columns, status_columns, ts_columns, strict=True)
    ]
    return GetOnlineFeaturesResponse(results=results, metadata=metadata)


def _entity_row(pre: PrecomputedRead, raw: bytes | None, now_us: int) -> Row:
    if raw is None:
        return pre.missing
    if raw[: vectors.TAG_BYTES] != pre.tag:
        raise stale_error(pre.service, _mismatch(raw))
    try:
        runs = _decoder.decode(raw[pre.prefix :])
    except msgspec.DecodeError:
        raise stale_error(pre.service, "a precomputed vector is unreadable") from None
    values: list[Any] = []
    stamps: list[str] = []
    plain = True  # every value present: the statuses are pre.all_present
    for run, meta in zip(runs, pre.runs, strict=True):
        if run is None:
            values += meta.nulls
            stamps += meta.epochs
            plain = False
            continue
        stamps += [run[1]] * meta.count
        if meta.ttl_us and now_us - run[0] > meta.ttl_us:
            values += meta.nulls
            plain = False
        else:
            values += run[3:]
            if run[2] is not None:
                plain = False
    if plain:
        return values, pre.all_present, stamps
    return values, _statuses(pre, runs, now_us), stamps


def _statuses(pre: PrecomputedRead, runs: Sequence[Any], now_us: int) -> list[str]:
    statuses: list[str] = []
    for run, meta in zip(runs, pre.runs, strict=True):
        if run is None:
            statuses += meta.not_found
        elif meta.ttl_us and now_us - run[0] > meta.ttl_us:
            statuses += meta.outside
        elif run[2] is None:
            statuses += meta.present
        else:
            statuses += [_STATUS[code] for code in run[2]]
    return statuses


def _mismatch(raw: bytes) -> str:
    if raw == vectors.INVALID:
        return (
            "a precomputed vector no longer matches its records (a write came from a "
            "process that did not know the service's current definition)"
        )
    return "a precomputed vector was built for another definition of the service"
