"""SQLite online store: the embedded default, one file in the feature repo.

Queries run on the event loop thread. A local SQLite point read takes microseconds, less
than handing it to a thread would; WAL mode lets ``ladle materialize`` write while
servers read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from stores.base import OnlineStore, ReadBatch, ReadResult, StoreUnavailable, WriteRow

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

#: SQLite's default limit on bound parameters is 32766; stay well below it.
_MAX_KEYS_PER_QUERY = 500


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
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            db.executemany(_UPSERT, [(r.key, r.view, r.event_ts_us, r.record) for r in rows])
            written = db.total_changes - before
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite online store write failed: {exc}") from exc
        except BaseException:
            if db.in_transaction:  # never leave the database write-locked
                db.execute("ROLLBACK")
            raise
        return written

    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        if views:
            marks = ",".join("?" * len(views))
            self._conn().execute(
                f"DELETE FROM ladle_online WHERE view IN ({marks}) "
                "AND substr(entity_key, 1, ?) = ?",
                (*views, len(prefix), prefix),
            )
