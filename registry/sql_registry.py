"""The SQL registry: one row per project in a PostgreSQL table, through asyncpg.

    ladle_registry(project text primary key, version bigint, updated_at timestamptz,
                   snapshot bytea)

Servers poll ``SELECT version, updated_at`` (one indexed row) and fetch the snapshot only
when it changed. A write runs in one transaction holding a per-project advisory lock and
the row lock, so concurrent applies and materialization records from any number of
processes and machines queue up, each sees the previous one's result, and the version
grows by exactly one per write. Materialization locks are session advisory locks, so
two runs of one view are kept apart across machines too.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import msgspec

from registry.backend import Change, RegistryError, RegistryUnavailable, ViewLocked
from registry.dsn import normalize, redact, scrub
from registry.model import RegistrySnapshot, snapshot_decoder, snapshot_encoder

T = TypeVar("T")

TABLE = "ladle_registry"

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    project text PRIMARY KEY,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    snapshot bytea NOT NULL
)
"""
_TABLE_EXISTS = f"SELECT to_regclass('{TABLE}') IS NOT NULL"
_TOKEN = f"SELECT version, updated_at FROM {TABLE} WHERE project = $1"
_LOAD = f"SELECT version, snapshot FROM {TABLE} WHERE project = $1"
_LOCKED_ROW = f"SELECT version, snapshot FROM {TABLE} WHERE project = $1 FOR UPDATE"
_UPSERT = f"""
INSERT INTO {TABLE} (project, version, updated_at, snapshot) VALUES ($1, $2, $3, $4)
ON CONFLICT (project) DO UPDATE
SET version = excluded.version, updated_at = excluded.updated_at, snapshot = excluded.snapshot
"""

#: Errors that mean the server is out of reach (or going away), not that it said no.
_UNREACHABLE = (
    OSError,  # refused, reset, unreachable host, unknown name; TimeoutError too
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
)

#: A write waits this long for another writer's transaction before giving up.
_WRITE_LOCK_SECONDS = 60.0


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a name (hashtext() is only 32 bits)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class SqlRegistry:
    def __init__(self, url: str, project: str, *, timeout: float = 5.0) -> None:
        """``timeout`` bounds connecting and each query, in seconds."""
        self._url = normalize(url)
        self.project = project
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        #: One connection serves checks and writes, one at a time.
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return redact(self._url)

    def _where(self) -> str:
        return f"registry {self.describe()} (project {self.project!r})"

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self._url,
                timeout=self.timeout,
                command_timeout=self.timeout,
                server_settings={"application_name": "ladle"},
            )
        except (ValueError, TypeError) as exc:  # asyncpg's URL checks; waiting won't help
            raise RegistryError(self._failure("has an unusable URL", exc)) from None

    async def _run(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``op`` on the shared connection, opening it if needed; a connection that
        failed is dropped, and the next call opens a new one."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                return await op(self._conn)
            except asyncpg.UndefinedTableError:
                raise RegistryError(
                    f"{self._where()}: table {TABLE} does not exist; run `ladle apply` to create it"
                ) from None
            except _UNREACHABLE as exc:
                self._drop()
                raise RegistryUnavailable(self._failure("cannot be reached", exc)) from None
            except asyncpg.PostgresError as exc:
                raise RegistryError(self._failure("refused the request", exc)) from None
            except asyncio.CancelledError:
                self._drop()  # a query may be in flight: the connection is unusable
                raise
            except asyncpg.exceptions.InternalClientError as exc:
                # e.g. "another operation is in progress" after the server went away mid-
                # query: the connection's state is unknown, so it is replaced.
                self._drop()
                raise RegistryUnavailable(self._failure("cannot be reached", exc)) from None

    def _failure(self, what: str, exc: BaseException) -> str:
        detail = str(exc) or type(exc).__name__
        return scrub(f"{self._where()} {what}: {detail}", self._url)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    def _missing(self) -> RegistryError:
        return RegistryError(
            f"{self._where()}: no registry has been applied yet; run `ladle apply` "
            "in the feature repo"
        )

    async def token(self) -> object:
        """``(version, updated_at)``: the time tells a registry deleted and applied again
        (which restarts at version 1) from the one before."""
        row = await self._run(lambda conn: conn.fetchrow(_TOKEN, self.project))
        if row is None:
            raise self._missing()
        return (row["version"], row["updated_at"])

    async def load(self) -> RegistrySnapshot:
        row = await self._run(lambda conn: conn.fetchrow(_LOAD, self.project))
        if row is None:
            raise self._missing()
        return self._decode(row["snapshot"], row["version"])

    def _decode(self, data: bytes, version: int) -> RegistrySnapshot:
        try:
            snapshot = snapshot_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"{self._where()} is corrupt: {exc}") from None
        return msgspec.structs.replace(snapshot, version=version)

    async def update(self, change: Change, *, replace_corrupt: bool = False) -> RegistrySnapshot:
        """Read, change and write in one transaction, under the project's write lock;
        ``change`` raising rolls it back."""

        async def write(conn: asyncpg.Connection) -> RegistrySnapshot:
            async with conn.transaction():
                if not await conn.fetchval(_TABLE_EXISTS):
                    # Two first applies (even of different projects) must not race here.
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1)",
                        lock_key(f"{TABLE}:create"),
                        timeout=_WRITE_LOCK_SECONDS,
                    )
                    await conn.execute(_CREATE)
                # A row lock alone cannot serialize two first applies: there is no row yet.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    lock_key(f"{TABLE}:{self.project}"),
                    timeout=_WRITE_LOCK_SECONDS,
                )
                row = await conn.fetchrow(_LOCKED_ROW, self.project)
                stored_version = row["version"] if row is not None else 0
                current: RegistrySnapshot | None = None
                if row is not None:
                    try:
                        current = self._decode(row["snapshot"], stored_version)
                    except RegistryError:
                        if not replace_corrupt:
                            raise
                proposed = change(current)
                if proposed.project != self.project:
                    raise RegistryError(
                        f"{self._where()}: refusing to store project {proposed.project!r} "
                        "in this project's row"
                    )
                now = datetime.now(UTC)
                snapshot = msgspec.structs.replace(
                    proposed, version=stored_version + 1, updated_at=now.isoformat()
                )
                await conn.execute(
                    _UPSERT,
                    self.project,
                    snapshot.version,
                    now,
                    snapshot_encoder.encode(snapshot),
                )
                return snapshot

        return await self._run(write)

    def view_lock(self, view: str, force: bool = False) -> AbstractAsyncContextManager[None]:
        return self._view_lock(view, force)

    @asynccontextmanager
    async def _view_lock(self, view: str, force: bool) -> AsyncIterator[None]:
        """A session advisory lock on a connection of its own, held while the run goes
        on; PostgreSQL releases it if this process dies."""
        conn = None
        try:
            conn = await self._connect()
            held = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)",
                lock_key(f"ladle_materialize:{self.project}:{view}"),
            )
        except BaseException as exc:
            if conn is not None:
                conn.terminate()
            if isinstance(exc, _UNREACHABLE):
                raise RegistryUnavailable(self._failure("cannot be reached", exc)) from None
            if isinstance(exc, asyncpg.PostgresError):
                raise RegistryError(self._failure("refused the request", exc)) from None
            raise
        try:
            if not held and not force:
                raise ViewLocked(f"feature view {view!r} is already being materialized")
            yield
        finally:
            with suppress(Exception):
                await conn.close(timeout=self.timeout)
            if not conn.is_closed():
                conn.terminate()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    await conn.close(timeout=self.timeout)
                except Exception:
                    conn.terminate()
