"""The one async interface every online store implements.

Stores move opaque records (see :mod:`stores.codec`) keyed by entity key and view name;
they know nothing about features or types, which keeps each store small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple


class StoreUnavailable(Exception):
    """The online store cannot be reached or did not answer."""


class OutcomeUnknown(StoreUnavailable):
    """A command was sent but no answer came back: it may or may not have been applied."""


class ReadBatch(NamedTuple):
    """Distinct entity keys, and the views to read for each of them."""

    keys: Sequence[bytes]
    views: Sequence[str]


class VectorTarget(NamedTuple):
    """A precomputed vector's layout, as a store needs it (one per layout, shared)."""

    field: str  # "svc:<service>"
    tag: bytes  # format version and layout fingerprint
    run_count: int
    views: str  # the vector's views, comma-joined (for the entity's vector index)
    empty: bytes  # the vector of an entity without records, to start from


class VectorPart(NamedTuple):
    """The runs one written record contributes to a precomputed vector (stores.vectors)."""

    target: VectorTarget
    runs: tuple[tuple[int, bytes, bytes], ...]  # (run position, header, values)


class WriteRow(NamedTuple):
    key: bytes
    view: str
    event_ts_us: int
    record: bytes
    #: Applied only if the record is: a vector always matches the records it holds.
    vectors: tuple[VectorPart, ...] = ()


class VectorWrite(NamedTuple):
    """A whole vector built by ``ladle precompute`` from records it read."""

    key: bytes
    field: str
    vector: bytes | None  # None: the entity has no records for it; drop the field
    views: str
    #: (view, SHA-1 hex of the record read, "" when there was none): the vector is
    #: written only if every record is still the one it was built from.
    digests: tuple[tuple[str, str], ...]


#: For each batch, for each key, for each view: the stored record or None.
ReadResult = list[list[list[bytes | None]]]


class OnlineStore(ABC):
    @abstractmethod
    async def start(self) -> None:
        """Open connections; raise :class:`StoreUnavailable` if the store cannot be used."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers now."""

    @abstractmethod
    async def read(self, batches: Sequence[ReadBatch]) -> ReadResult:
        """Read every batch in one round trip where the store allows it."""

    @abstractmethod
    async def write(self, rows: Sequence[WriteRow]) -> int:
        """Write all rows at once; a row older than the stored record is skipped.

        Returns the number of rows written. Equal timestamps overwrite.
        """

    @abstractmethod
    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        """Drop the records of these views under keys starting with ``prefix`` (a
        project's ``b"<project>:"``); used when ``ladle apply`` removes a view."""

    @abstractmethod
    def scan_keys(self, prefix: bytes, batch: int = 1000) -> AsyncIterator[list[bytes]]:
        """Every entity key starting with ``prefix``, in batches (each key at least once)."""

    @abstractmethod
    async def count_keys(self, prefix: bytes) -> int:
        """How many entity keys start with ``prefix`` (for progress output)."""

    @abstractmethod
    async def write_vectors(self, writes: Sequence[VectorWrite]) -> list[bool]:
        """Write each vector whose records are unchanged; False for the others."""
