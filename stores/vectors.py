"""The stored form of a precomputed feature vector, and how writes keep it current.

A feature service with ``precompute_online=True`` keeps, next to each entity's view
records (same Redis hash, same SQLite entity key), one more field ``svc:<service>``::

    0x01 | fingerprint (8 bytes) | run lengths (u32 big-endian each) | MessagePack array

The array holds one *run* per stretch of the service's output that one view feeds, each
a MessagePack array ``[event_ts_us, event_ts_text, statuses, value, ...]`` with the values
in output order and already converted for JSON (see :func:`stores.codec.output_converter`),
``statuses`` nil when every value is present, else one letter per value (``P`` present,
``N`` null, ``F`` not in the record); or nil when the view has no record for the entity.
A read is then one decode and a few list operations per entity.

The run lengths let a write replace one view's runs by slicing bytes, without decoding
values: the Redis write script does exactly what :func:`apply_written` does here, so no
write needs a read-modify-write round trip, and the vector changes with the record in
the same atomic step.

A vector whose fingerprint is not the writer's, or that a writer cannot keep current, is
replaced by :data:`INVALID`; reads answer a clear error until ``ladle precompute`` rebuilds
it. To find vectors that depend on a view whatever the writer knows (a process still on
an older registry), each entity with vectors also has an index field ``svc:`` listing
``field=view,view;...``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Protocol

from stores.base import VectorPart

VERSION = b"\x01"
FINGERPRINT_BYTES = 8
TAG_BYTES = 1 + FINGERPRINT_BYTES
#: Stands in for a vector that no longer matches its records.
INVALID = b"\x00"
#: A run for a view without a record: MessagePack nil.
NO_RECORD = b"\xc0"
FIELD_PREFIX = "svc:"
INDEX_FIELD = "svc:"
_LENGTH = struct.Struct(">I")


def field_for(service: str) -> str:
    return FIELD_PREFIX + service


def tag_for(fingerprint: bytes) -> bytes:
    return VERSION + fingerprint


def array_header(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    return b"\xdc" + struct.pack(">H", count)


def prefix_length(run_count: int) -> int:
    """Bytes before the runs' MessagePack array ends its header: what a reader skips."""
    return TAG_BYTES + 4 * run_count + len(array_header(run_count))


def build(tag: bytes, runs: Sequence[bytes]) -> bytes:
    lengths = b"".join(_LENGTH.pack(len(run)) for run in runs)
    return b"".join((tag, lengths, array_header(len(runs)), *runs))


def split(vector: bytes, run_count: int) -> list[bytes]:
    """The encoded runs of a vector whose tag has been checked."""
    runs = []
    position = prefix_length(run_count)
    for i in range(run_count):
        (length,) = _LENGTH.unpack_from(vector, TAG_BYTES + 4 * i)
        runs.append(vector[position : position + length])
        position += length
    return runs


def index_entries(index: bytes | None) -> Iterator[tuple[str, list[str]]]:
    """(vector field, views it is built from) for each entry of an index field."""
    for entry in (index or b"").decode().split(";"):
        field, sep, views = entry.partition("=")
        if sep:
            yield field, views.split(",")


def index_put(index: bytes | None, field: str, views: str) -> bytes | None:
    """The index with ``field=views`` in it, or None when it is already there."""
    entry = f"{field}={views}"
    entries = [e for e in (index or b"").decode().split(";") if e]
    if entry in entries:
        return None
    kept = [e for e in entries if not e.startswith(field + "=")]
    return ";".join([*kept, entry]).encode()


class EntityFields(Protocol):
    """One entity's fields (views, vectors, index) in a store, inside a transaction."""

    def get(self, field: str) -> bytes | None: ...

    def set(self, field: str, value: bytes) -> None: ...

    def exists(self, field: str) -> bool: ...


def apply_written(fields: EntityFields, view: str, parts: Sequence[VectorPart]) -> None:
    """Bring the entity's vectors up to date after its record of ``view`` was written.

    ``parts`` are the runs the writer built for the vectors it knows; any other vector
    the index says depends on ``view`` is invalidated.
    """
    covered = set()
    for part in parts:
        covered.add(part.field)
        vector = fields.get(part.field)
        if vector is not None and vector[:TAG_BYTES] == part.tag:
            runs = split(vector, part.run_count)
            for position, run in part.runs:
                runs[position] = run
            fields.set(part.field, build(part.tag, runs))
        elif vector is not None:
            if vector != INVALID:  # built for another layout
                fields.set(part.field, INVALID)
        elif any(fields.exists(v) for v in part.views.split(",") if v != view):
            # Other views have records that no vector holds (written by a process that
            # did not know about this vector): only a rebuild can tell their runs.
            fields.set(part.field, INVALID)
        else:
            runs = [NO_RECORD] * part.run_count
            for position, run in part.runs:
                runs[position] = run
            fields.set(part.field, build(part.tag, runs))
            put_index(fields, part.field, part.views)
    index = fields.get(INDEX_FIELD)
    if index is None:
        return
    for field, views in index_entries(index):
        if field not in covered and view in views:
            vector = fields.get(field)
            if vector is not None and vector != INVALID:
                fields.set(field, INVALID)


def put_index(fields: EntityFields, field: str, views: str) -> None:
    updated = index_put(fields.get(INDEX_FIELD), field, views)
    if updated is not None:
        fields.set(INDEX_FIELD, updated)
