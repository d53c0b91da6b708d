"""SQLite online store: the embedded default, one file in the feature repo.

Queries run on the event loop thread. A local SQLite point read takes microseconds, less
than handing it to a thread would; WAL mode lets ``ladle materialize`` write while
servers read.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from stores import vectors
from stores.base import (
    OnlineStore,
    ReadBatch,
    ReadResult,
    StoreUnavailable,
    VectorWrite,
    WriteRow,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ladle_online (
    entity_key BLOB NOT NULL,
    view TEXT NOT NULL,
    event_ts INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (entity_key, view)
) WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO ladle_online (entity_key, view, event_ts, record) VALUES (?, ?, ?, ?)
ON CONFLICT (entity_key, view) DO UPDATE
SET event_ts = excluded.event_ts, record = excluded.record
WHERE excluded.event_ts >= ladle_online.event_ts
"""

#: Finds whether any entity has a vector index (stores.vectors) without a table scan.
_INDEX_INDEX = f"""
CREATE INDEX IF NOT EXISTS ladle_online_vector_index ON ladle_online (view)
WHERE view = '{vectors.INDEX_FIELD}'
"""

_GET = "SELECT record FROM ladle_online WHERE entity_key = ? AND view = ?"
_SET = """
INSERT OR REPLACE INTO ladle_online (entity_key, view, event_ts, record) VALUES (?, ?, 0, ?)
"""

#: SQLite's default limit on bound parameters is 32766; stay well below it.
_MAX_KEYS_PER_QUERY = 500


class _Fields:
    """One entity's rows, seen as stores.vectors.EntityFields (inside a transaction)."""

    def __init__(self, db: sqlite3.Connection, key: bytes) -> None:
        self.db, self.key = db, key

    def get(self, field: str) -> bytes | None:
        row = self.db.execute(_GET, (self.key, field)).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, field: str, value: bytes) -> None:
        self.db.execute(_SET, (self.key, field, value))

    def exists(self, field: str) -> bool:
        return self.get(field) is not None


class SqliteOnlineStore(OnlineStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(_SCHEMA)
            db.execute(_INDEX_INDEX)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite online store {self.path}: {exc}") from exc
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("SQLite online store is not open")
        return self._db

    async def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite online store {self.path}: {exc}") from exc

    async def read(self, batches: Sequence[ReadBatch]) -> ReadResult:
        db = self._conn()
        results: ReadResult = []
        try:
            for batch in batches:
                found: dict[tuple[bytes, str], bytes] = {}
                view_marks = ",".join("?" * len(batch.views))
                for start in range(0, len(batch.keys), _MAX_KEYS_PER_QUERY):
                    chunk = batch.keys[start : start + _MAX_KEYS_PER_QUERY]
                    sql = (
                        "SELECT entity_key, view, record FROM ladle_online "
                        f"WHERE entity_key IN ({','.join('?' * len(chunk))}) "
                        f"AND view IN ({view_marks})"
                    )
                    for key, view, record in db.execute(sql, (*chunk, *batch.views)):
                        found[(key, view)] = record
                results.append(
                    [[found.get((key, view)) for view in batch.views] for key in batch.keys]
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite online store read failed: {exc}") from exc
        return results

    async def write(self, rows: Sequence[WriteRow]) -> int:
        return self.write_sync(rows)

    def write_sync(self, rows: Sequence[WriteRow]) -> int:
        """All rows in one transaction: a write is applied whole or not at all."""
        with self._transaction() as db:
            if any(r.vectors for r in rows) or self._has_vectors(db):
                return self._write_with_vectors(db, rows)
            before = db.total_changes
            db.executemany(_UPSERT, [(r.key, r.view, r.event_ts_us, r.record) for r in rows])
            return db.total_changes - before

    @staticmethod
    def _has_vectors(db: sqlite3.Connection) -> bool:
        # A literal, so the partial index applies whatever the planner knows of parameters.
        query = f"SELECT 1 FROM ladle_online WHERE view = '{vectors.INDEX_FIELD}' LIMIT 1"
        return db.execute(query).fetchone() is not None

    @staticmethod
    def _write_with_vectors(db: sqlite3.Connection, rows: Sequence[WriteRow]) -> int:
        """Row by row, as the Redis script does: a written record updates the vectors."""
        written = 0
        for row in rows:
            cursor = db.execute(_UPSERT, (row.key, row.view, row.event_ts_us, row.record))
            if cursor.rowcount == 1:
                written += 1
                vectors.apply_written(_Fields(db, row.key), row.view, row.vectors)
        return written

    async def write_vectors(self, writes: Sequence[VectorWrite]) -> list[bool]:
        results = []
        with self._transaction() as db:
            for write in writes:
                fields = _Fields(db, write.key)
                same = all(_digest(fields.get(view)) == digest for view, digest in write.digests)
                results.append(same)
                if same and write.vector is None:
                    db.execute(
                        "DELETE FROM ladle_online WHERE entity_key = ? AND view = ?",
                        (write.key, write.field),
                    )
                elif same and write.vector is not None:
                    fields.set(write.field, write.vector)
                    vectors.put_index(fields, write.field, write.views)
        return results

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite online store write failed: {exc}") from exc
        except BaseException:
            if db.in_transaction:  # never leave the database write-locked
                db.execute("ROLLBACK")
            raise

    async def scan_keys(self, prefix: bytes, batch: int = 1000) -> AsyncIterator[list[bytes]]:
        query = (
            "SELECT DISTINCT entity_key FROM ladle_online WHERE entity_key > ? "
            "AND entity_key < ? ORDER BY entity_key LIMIT ?"
        )
        last, end = prefix, _after(prefix)
        while True:
            try:
                keys = [bytes(r[0]) for r in self._conn().execute(query, (last, end, batch))]
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite online store read failed: {exc}") from exc
            if not keys:
                return
            yield keys
            last = keys[-1]

    async def count_keys(self, prefix: bytes) -> int:
        query = (
            "SELECT COUNT(DISTINCT entity_key) FROM ladle_online "
            "WHERE entity_key > ? AND entity_key < ?"
        )
        try:
            row = self._conn().execute(query, (prefix, _after(prefix))).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite online store read failed: {exc}") from exc
        return int(row[0])

    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        if views:
            marks = ",".join("?" * len(views))
            self._conn().execute(
                f"DELETE FROM ladle_online WHERE view IN ({marks}) "
                "AND substr(entity_key, 1, ?) = ?",
                (*views, len(prefix), prefix),
            )


def _after(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\xff" * (len(prefix) + 1)
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _digest(record: bytes | None) -> str:
    return "" if record is None else hashlib.sha1(record).hexdigest()
