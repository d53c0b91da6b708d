"""Read a feature service from its precomputed vectors (see stores.vectors).

The response is byte for byte what reading the service view by view gives (same columns,
values, statuses and timestamps), built with much less work: per entity one decode, then
the JSON pieces of each run appended as stored, already in output order; rows become
columns with ``zip`` and the body is joined from those pieces, with no per-value Python
work. Per-view ttls are checked against each run's event time, so a stale view still
shows ``OUTSIDE_MAX_AGE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

import msgspec

from app.errors import ApiError
from app.schemas import ResponseMetadata
from registry.model import FeatureServiceSpec, RegistrySnapshot
from stores import vectors
from stores.base import OnlineStore, ReadBatch
from stores.keys import KeyEncoder, distinct_keys
from stores.precompute import VectorLayout, vector_layout
from stores.timestamps import EPOCH_TEXT

_STATUS_JSON = {"P": b'"PRESENT"', "N": b'"NULL_VALUE"', "F": b'"NOT_FOUND"'}
_PRESENT = b'"PRESENT"'
_EPOCH = b'"' + EPOCH_TEXT.encode() + b'"'
_STATUS_TEXT = {b'"PRESENT"': "PRESENT", b'"NULL_VALUE"': "NULL_VALUE",
                b'"NOT_FOUND"': "NOT_FOUND", b'"OUTSIDE_MAX_AGE"': "OUTSIDE_MAX_AGE"}  # fmt: skip
_ENTITY = b'{"values":%b,"statuses":%b,"event_timestamps":%b}'
_NEXT = b',{"values":['
_TAIL = b'],"statuses":%b,"event_timestamps":%b}' + _NEXT
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_THIRD = itemgetter(2)
#: The header standing in for a run without a record: shown with the epoch timestamp.
_NO_RECORD = (0, _EPOCH, None)
_decoder = msgspec.msgpack.Decoder()
_rows_decoder = msgspec.msgpack.Decoder(list[list[Any]])
_json = msgspec.json.Encoder()

#: One entity's output: its decoded vector (run headers, then a JSON value per column)
#: and its statuses (JSON, per column).
Row = tuple[list[Any], list[bytes]]


@dataclass(frozen=True, slots=True)
class RunRead:
    """A run's place in the vector, its ttl, and the pieces irregular rows are built from."""

    start: int  # position of its first value in the vector's array
    count: int
    ttl_us: int
    nulls: list[bytes]
    present: list[bytes]
    not_found: list[bytes]
    outside: list[bytes]


@dataclass(frozen=True, slots=True)
class PrecomputedRead:
    service: str
    fields: tuple[str]
    views: tuple[str, ...]
    tag: bytes
    prefix: int  # where the vector's array starts
    key_columns: tuple[int, ...]  # entity columns, in the key encoder's order
    encode: KeyEncoder
    runs: tuple[RunRead, ...]
    run_of_column: tuple[int, ...]  # each output feature's run
    metadata_json: bytes
    all_present: list[bytes]
    missing: Row  # an entity without a vector


@dataclass(frozen=True, slots=True)
class PrecomputedAnswer:
    body: bytes
    entity_columns: int
    rows: list[Row]

    def statuses(self) -> list[list[str]]:
        """Per column, as GetOnlineFeaturesResponse would hold them (for metrics)."""
        count = len(self.rows)
        per_row = [[_STATUS_TEXT[s] for s in row[1]] for row in self.rows]
        features = [list(column) for column in zip(*per_row, strict=True)]
        return [["PRESENT"] * count] * self.entity_columns + features


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
    metadata: ResponseMetadata,
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
    runs = []
    run_of_column: list[int] = []
    start = len(layout.runs)
    for index, run in enumerate(layout.runs):
        count = len(run.features)
        runs.append(
            RunRead(
                start,
                count,
                run.ttl_us,
                [b"null"] * count,
                [_PRESENT] * count,
                [b'"NOT_FOUND"'] * count,
                [b'"OUTSIDE_MAX_AGE"'] * count,
            )
        )
        run_of_column += [index] * count
        start += count
    width = len(run_of_column)
    no_record = [_NO_RECORD] * len(runs) + [b"null"] * width
    return PrecomputedRead(
        service=service.name,
        fields=(layout.field,),
        views=layout.views,
        tag=layout.tag,
        prefix=vectors.array_offset(len(runs)),
        key_columns=key_columns,
        encode=encode,
        runs=tuple(runs),
        run_of_column=tuple(run_of_column),
        metadata_json=_json.encode(metadata),
        all_present=[_PRESENT] * width,
        missing=(no_record, [b'"NOT_FOUND"'] * width),
    )


async def read_precomputed(
    pre: PrecomputedRead,
    columns: list[list[Any]],
    rows: int,
    store: OnlineStore,
    now_us: int,
) -> PrecomputedAnswer:
    """The response body; ``columns`` are the coerced entity values (all join keys)."""
    keys, fan_out = distinct_keys(pre.encode, [columns[i] for i in pre.key_columns])
    (found,) = await store.read([ReadBatch(keys, pre.fields)])
    raws = [stored[0] for stored in found]
    regular = _regular_rows(pre, raws, now_us)
    by_key: list[Row]
    if regular is not None:
        by_key = [(items, pre.all_present) for items in regular]
    else:
        by_key = [_entity_row(pre, raw, now_us) for raw in raws]
        missing = [key for key, row in zip(keys, by_key, strict=True) if row is pre.missing]
        if missing:
            await _check_missing(pre, missing, store)
    chosen = by_key if fan_out is None else [by_key[p] for p in fan_out]

    present = b"[" + b",".join([_PRESENT] * rows) + b"]"
    epochs = b"[" + b",".join([_EPOCH] * rows) + b"]"
    entity_parts = [_ENTITY % (_json.encode(column), present, epochs) for column in columns]
    # Transposed, the rows' first columns are the run headers, then one per feature.
    transposed = zip(*[row[0] for row in chosen], strict=True)
    stamps = [b"[" + b",".join(map(_SECOND, next(transposed))) + b"]" for _ in range(len(pre.runs))]
    # What follows each column's values: its statuses and timestamps (shared by a run's
    # columns, and with every value present by all columns of a run), then the next column.
    tails: list[bytes]
    if all(row[1] is pre.all_present for row in chosen):
        per_run = [_TAIL % (present, stamp) for stamp in stamps]
        tails = list(map(per_run.__getitem__, pre.run_of_column))
    else:
        statuses = zip(*[row[1] for row in chosen], strict=True)
        tails = [
            _TAIL % (b"[" + b",".join(status) + b"]", stamps[run])
            for status, run in zip(statuses, pre.run_of_column, strict=True)
        ]
    tails[-1] = tails[-1][: -len(_NEXT)]
    features = chain.from_iterable(zip(map(b",".join, transposed), tails, strict=True))
    body = b"".join(
        (
            b'{"results":[',
            b",".join(entity_parts),
            b',{"values":[',
            *features,
            b'],"metadata":',
            pre.metadata_json,
            b"}",
        )
    )
    return PrecomputedAnswer(body, len(columns), chosen)


async def _check_missing(pre: PrecomputedRead, keys: list[bytes], store: OnlineStore) -> None:
    """Entities without a vector must have no records either (else a process that did
    not know the service's definition wrote them): NOT_FOUND must not hide stored data.

    The vector is read again with the records: an entity written between the two reads
    has both (one atomic write makes them), and is shown as it was at the first read.
    """
    (stored,) = await store.read([ReadBatch(keys, (*pre.views, *pre.fields))])
    views = len(pre.views)
    for per_key in stored:
        has_records = any(record is not None for record in per_key[:views])
        if has_records and per_key[views] is None:
            raise stale_error(
                pre.service,
                "an entity has records but no precomputed vector (a write came from a process "
                "that did not know the service's current definition)",
            )


def _regular_rows(
    pre: PrecomputedRead, raws: list[bytes | None], now_us: int
) -> list[list[Any]] | None:
    """The usual case in one decode: every entity has a current vector whose runs all
    hold fresh records with every value present. None when any does not (the rows are
    then read one by one, which also tells what is wrong)."""
    if None in raws:
        return None
    found = cast(list[bytes], raws)
    if not all(map(bytes.startswith, found, repeat(pre.tag))):
        return None
    joined = b"".join([memoryview(raw)[pre.prefix :] for raw in found])
    try:
        rows: list[list[Any]] = _rows_decoder.decode(vectors.array_header(len(raws)) + joined)
    except msgspec.DecodeError:
        return None
    for index, run in enumerate(pre.runs):
        headers = list(map(itemgetter(index), rows))
        if None in headers or list(map(_THIRD, headers)).count(None) != len(headers):
            return None
        if run.ttl_us > 0 and now_us - min(map(_FIRST, headers)) > run.ttl_us:
            return None
    return rows


def _entity_row(pre: PrecomputedRead, raw: bytes | None, now_us: int) -> Row:
    if raw is None:
        return pre.missing
    if raw[: vectors.TAG_BYTES] != pre.tag:
        raise stale_error(pre.service, _mismatch(raw))
    try:
        items = _decoder.decode(raw[pre.prefix :])
    except msgspec.DecodeError:
        raise stale_error(pre.service, "a precomputed vector is unreadable") from None
    for header, run in zip(items, pre.runs, strict=False):
        if header is None or header[2] is not None or now_us - header[0] > run.ttl_us > 0:
            return _irregular(pre, items, now_us)
    return items, pre.all_present


def _irregular(pre: PrecomputedRead, items: list[Any], now_us: int) -> Row:
    """A row with a run missing, stale, or holding values that are not present."""
    items = list(items)
    statuses: list[bytes] = []
    for index, run in enumerate(pre.runs):
        header = items[index]
        values = slice(run.start, run.start + run.count)
        if header is None:
            items[index] = _NO_RECORD
            items[values] = run.nulls
            statuses += run.not_found
        elif now_us - header[0] > run.ttl_us > 0:
            items[values] = run.nulls
            statuses += run.outside
        elif header[2] is None:
            statuses += run.present
        else:
            statuses += [_STATUS_JSON[code] for code in header[2]]
    return items, statuses


def _mismatch(raw: bytes) -> str:
    if raw == vectors.INVALID:
        return (
            "a precomputed vector no longer matches its records (a write came from a "
            "process that did not know the service's current definition)"
        )
    return "a precomputed vector was built for another definition of the service"
