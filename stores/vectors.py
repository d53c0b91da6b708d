"""The stored form of a precomputed feature vector, and how writes keep it current.

A feature service with ``precompute_online=True`` keeps, next to each entity's view
records (same Redis hash, same SQLite entity key), one more field ``svc:<service>``::

    0x01 | fingerprint (8 bytes) | 2 x runs chunk lengths (u32 big-endian) | array

A *run* is a stretch of the service's output that one view feeds. The MessagePack array
holds first one header per run, ``[event_ts_us, event_ts_json, statuses]`` (nil when the
view has no record for the entity), then every value of the service in output order, each
as the JSON text the response shows (converted as :func:`stores.codec.output_converter`
says). ``statuses`` is nil when every value of the run is present, else one letter per
value (``P`` present, ``N`` null, ``F`` not in the record). Decoded, the array is the
entity's row of the response, and rows become columns with one ``zip``.

The chunk lengths (each run's header, then each run's values) let a write replace one
view's runs by slicing bytes, without decoding values: the Redis write script does
exactly what :func:`apply_written` does here, so no write needs a read-modify-write round
trip, and the vector changes with the record in the same atomic step.

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
#: MessagePack nil: the header of a run whose view has no record, and its values.
NIL = b"\xc0"
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
    if count < 2**16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def array_offset(run_count: int) -> int:
    """Where the MessagePack array starts: what a reader decodes from."""
    return TAG_BYTES + 8 * run_count


def build(tag: bytes, elements: int, chunks: Sequence[bytes]) -> bytes:
    """A vector from its ``2 x runs`` chunks: each run's header, then each run's values."""
    lengths = b"".join(_LENGTH.pack(len(chunk)) for chunk in chunks)
    return b"".join((tag, lengths, array_header(elements), *chunks))


def split(vector: bytes, run_count: int) -> tuple[int, list[bytes]]:
    """The element count and the chunks of a vector whose tag has been checked."""
    offset = array_offset(run_count)
    first = vector[offset]
    if first < 0xA0:
        elements, position = first & 0x0F, offset + 1
    elif first == 0xDC:
        elements, position = struct.unpack_from(">H", vector, offset + 1)[0], offset + 3
    else:
        elements, position = struct.unpack_from(">I", vector, offset + 1)[0], offset + 5
    chunks = []
    for i in range(2 * run_count):
        (length,) = _LENGTH.unpack_from(vector, TAG_BYTES + 4 * i)
        chunks.append(vector[position : position + length])
        position += length
    return elements, chunks


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
        target = part.target
        covered.add(target.field)
        vector = fields.get(target.field)
        if vector is None:
            if any(fields.exists(v) for v in target.views.split(",") if v != view):
                # Other views have records that no vector holds (written by a process
                # that did not know about this vector): only a rebuild can tell their runs.
                fields.set(target.field, INVALID)
                continue
            vector = target.empty
            put_index(fields, target.field, target.views)
        if vector[:TAG_BYTES] != target.tag:
            if vector != INVALID:  # built for another layout
                fields.set(target.field, INVALID)
            continue
        elements, chunks = split(vector, target.run_count)
        for position, header, values in part.runs:
            chunks[position] = header
            chunks[target.run_count + position] = values
        fields.set(target.field, build(target.tag, elements, chunks))
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
