"""Redis online store.

Layout: one hash per entity key (see :mod:`stores.keys`), one field per feature view,
holding that view's record (see :mod:`stores.codec`). A request reads every view of
every distinct entity in one pipeline round trip: one HMGET per distinct entity key,
naming all the views that share that key.

Writes go through a Lua script (stores.redis_scripts) so that "newer event timestamp
wins" is checked and applied atomically inside Redis, with the precomputed vectors that
hold the written views (stores.vectors), and one write call is applied whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from registry.dsn import redact
from stores.base import (
    OnlineStore,
    ReadBatch,
    ReadResult,
    StoreUnavailable,
    VectorTarget,
    VectorWrite,
    WriteRow,
)
from stores.redis_scripts import VECTOR_SCRIPT, VECTOR_SHA, WRITE_SCRIPT, WRITE_SHA
from stores.redis_wire import PipelinedRedis, hmget_payload, pack_bulk, pack_command

_EVALSHA = pack_bulk(b"EVALSHA")
_WRITE_SHA_BULK = pack_bulk(WRITE_SHA)


def parse_connection_string(text: str) -> dict[str, Any]:
    """Feast's form ``host:port,db=N,password=...,ssl=true,username=...``, or a redis:// URL."""
    if text.startswith(("redis://", "rediss://")):
        return {"url": text}
    head, *options = [part.strip() for part in text.split(",") if part.strip()]
    host, _, port = head.rpartition(":") if ":" in head else (head, "", "6379")
    kwargs: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379)}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"connection_string option {option!r} is not name=value")
        name = name.strip().lower()
        if name == "db":
            kwargs["db"] = int(value)
        elif name in ("password", "username"):
            kwargs[name] = unquote(value)
        elif name == "ssl":
            kwargs["ssl"] = value.strip().lower() in ("true", "1", "yes")
        else:
            raise ValueError(f"connection_string option {name!r} is not supported")
    return kwargs


def _wire_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Connection options for the read path, from parse_connection_string's result."""
    if "url" in kwargs:
        url = urlsplit(kwargs["url"])
        if url.scheme not in ("redis", "rediss"):
            raise ValueError(f"connection_string {kwargs['url']!r}: use redis:// or rediss://")
        db = url.path.strip("/")
        return {
            "host": url.hostname or "localhost",
            "port": url.port or 6379,
            "db": int(db) if db else 0,
            "username": unquote(url.username) if url.username else None,
            "password": unquote(url.password) if url.password else None,
            "use_ssl": url.scheme == "rediss",
        }
    return {
        "host": kwargs["host"],
        "port": kwargs["port"],
        "db": kwargs.get("db", 0),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
        "use_ssl": kwargs.get("ssl", False),
    }


class RedisOnlineStore(OnlineStore):
    def __init__(
        self,
        connection_string: str,
        key_ttl_seconds: int | None = None,
        *,
        socket_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self.connection_string = connection_string
        self.key_ttl_seconds = key_ttl_seconds or 0
        self._kwargs = parse_connection_string(connection_string)
        self._socket_timeout = socket_timeout
        self.max_connections = max_connections
        self._client: aioredis.Redis | None = None
        #: Reads and writes bypass redis-py: see stores.redis_wire.
        self._wire: PipelinedRedis | None = None
        self._packed_views: dict[tuple[str, ...], bytes] = {}
        self._view_bulks: dict[str, bytes] = {}
        self._target_bulks: dict[VectorTarget, bytes] = {}

    def describe(self) -> str:
        """Where the store is, without its password (which a redis:// URL may hold)."""
        kw = self._kwargs
        return redact(kw["url"]) if "url" in kw else f"{kw['host']}:{kw['port']}/{kw.get('db', 0)}"

    async def start(self) -> None:
        common: dict[str, Any] = {
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._socket_timeout,
            "decode_responses": False,
            # One immediate retry replaces a connection that died with a Redis restart;
            # more (with backoff) would only delay the 503 a client should get now.
            "retry": Retry(NoBackoff(), 1),
        }
        kwargs = dict(self._kwargs)
        url = kwargs.pop("url", None)
        # A bounded pool: past max_connections, callers wait (up to the timeout) for a
        # free connection instead of opening connections without limit.
        pool_options = {
            "max_connections": self.max_connections,
            "timeout": self._socket_timeout,
            **common,
        }
        pool = (
            aioredis.BlockingConnectionPool.from_url(url, **pool_options)
            if url
            else aioredis.BlockingConnectionPool(**kwargs, **pool_options)
        )
        client = aioredis.Redis(connection_pool=pool)
        try:
            await client.ping()
            await client.script_load(WRITE_SCRIPT)
            await client.script_load(VECTOR_SCRIPT)
        except (RedisError, OSError) as exc:
            await client.aclose(close_connection_pool=True)
            raise StoreUnavailable(f"cannot reach Redis at {self.describe()}: {exc}") from exc
        self._client = client
        self._wire = PipelinedRedis(**_wire_options(self._kwargs), timeout=self._socket_timeout)

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        if self._client is not None:
            await self._client.aclose(close_connection_pool=True)
            self._client = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable("Redis online store is not started")
        return self._client

    async def ping(self) -> None:
        """Through the connection that serves reads and writes, so health tells their state."""
        if self._wire is None:
            raise StoreUnavailable("Redis online store is not started")
        (reply,) = await self._wire.execute(pack_command(b"PING"), 1)
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"Redis at {self.describe()}: {reply}")

    def _packed(self, views: Sequence[str]) -> bytes:
        key = tuple(views)
        packed = self._packed_views.get(key)
        if packed is None:
            if len(self._packed_views) > 1024:
                self._packed_views.clear()
            packed = b"".join(pack_bulk(view.encode()) for view in views)
            self._packed_views[key] = packed
        return packed

    async def read(self, batches: Sequence[ReadBatch]) -> ReadResult:
        """One write and one round trip: an HMGET per distinct key, all views of it."""
        if self._wire is None:
            raise StoreUnavailable("Redis online store is not started")
        payload = b"".join(
            hmget_payload(batch.keys, self._packed(batch.views), len(batch.views))
            for batch in batches
        )
        count = sum(len(batch.keys) for batch in batches)
        replies = await self._wire.execute(payload, count)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise StoreUnavailable(f"Redis read failed: {reply}")
        results: ReadResult = []
        offset = 0
        for batch in batches:
            results.append(replies[offset : offset + len(batch.keys)])
            offset += len(batch.keys)
        return results

    async def write(self, rows: Sequence[WriteRow]) -> int:
        """One EVALSHA of the write script on the pipelined connection: Redis applies it
        whole, before any other command."""
        if not rows:
            return 0
        if self._wire is None:
            raise StoreUnavailable("Redis online store is not started")
        # Packed by hand (see pack_command): a materialization sends millions of parts.
        bulks = [pack_bulk(b"%d" % self.key_ttl_seconds)]
        count = 1
        for row in rows:
            bulks += (
                self._packed_view(row.view),
                pack_bulk(b"%d" % row.event_ts_us),
                pack_bulk(row.record),
                pack_bulk(b"%d" % len(row.vectors)),
            )
            count += 4
            for vector in row.vectors:
                bulks += (self._packed_target(vector.target), pack_bulk(b"%d" % len(vector.runs)))
                count += 6
                for position, header, values in vector.runs:
                    bulks += (pack_bulk(b"%d" % position), pack_bulk(header), pack_bulk(values))
                    count += 3
        keys = [pack_bulk(row.key) for row in rows]
        head = (b"*%d\r\n" % (3 + len(keys) + count), _EVALSHA, _WRITE_SHA_BULK)
        payload = b"".join((*head, pack_bulk(b"%d" % len(keys)), *keys, *bulks))
        return int(await self._eval_payload(WRITE_SCRIPT, payload))

    def _packed_view(self, view: str) -> bytes:
        packed = self._view_bulks.get(view)
        if packed is None:
            if len(self._view_bulks) > 1024:
                self._view_bulks.clear()
            packed = self._view_bulks[view] = pack_bulk(view.encode())
        return packed

    def _packed_target(self, target: VectorTarget) -> bytes:
        """field, tag, run count, views and empty vector: the same for every row."""
        packed = self._target_bulks.get(target)
        if packed is None:
            if len(self._target_bulks) > 1024:
                self._target_bulks.clear()
            packed = b"".join(
                pack_bulk(part)
                for part in (
                    target.field.encode(),
                    target.tag,
                    b"%d" % target.run_count,
                    target.views.encode(),
                    target.empty,
                )
            )
            self._target_bulks[target] = packed
        return packed

    async def write_vectors(self, writes: Sequence[VectorWrite]) -> list[bool]:
        if not writes:
            return []
        parts: list[bytes] = []
        for write in writes:
            parts += (
                write.field.encode(),
                write.vector or b"",
                write.views.encode(),
                b"%d" % len(write.digests),
            )
            for view, digest in write.digests:
                parts += (view.encode(), digest.encode())
        reply = await self._eval(VECTOR_SCRIPT, VECTOR_SHA, [w.key for w in writes], parts)
        return [bool(flag) for flag in reply]

    async def _eval(
        self, script: str, sha: bytes, keys: Sequence[bytes], args: Sequence[bytes]
    ) -> Any:
        payload = pack_command(b"EVALSHA", sha, b"%d" % len(keys), *keys, *args)
        return await self._eval_payload(script, payload)

    async def _eval_payload(self, script: str, payload: bytes) -> Any:
        """Run a packed EVALSHA; a script Redis forgot is loaded again."""
        if self._wire is None:
            raise StoreUnavailable("Redis online store is not started")
        (reply,) = await self._wire.execute(payload, 1)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # Redis restarted or flushed its scripts: load it again and retry once.
            await self._wire.execute(pack_command(b"SCRIPT", b"LOAD", script.encode()), 1)
            (reply,) = await self._wire.execute(payload, 1)
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"Redis write failed: {reply}")
        return reply

    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        if not views:
            return
        client = self._redis()
        pattern = _match(prefix)
        try:
            async for batch in _chunks(client.scan_iter(match=pattern, count=1000, _type="hash")):
                pipe = client.pipeline(transaction=False)
                for key in batch:
                    pipe.hdel(key, *views)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis delete failed: {exc}") from exc

    async def scan_keys(self, prefix: bytes, batch: int = 1000) -> AsyncIterator[list[bytes]]:
        client = self._redis()
        keys = client.scan_iter(match=_match(prefix), count=batch, _type="hash")
        try:
            async for chunk in _chunks(keys, batch):
                yield chunk
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis scan failed: {exc}") from exc

    async def count_keys(self, prefix: bytes) -> int:
        count = 0
        async for chunk in self.scan_keys(prefix):
            count += len(chunk)
        return count


def _match(prefix: bytes) -> bytes:
    """A SCAN pattern for keys starting with ``prefix``."""
    escaped = prefix
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        escaped = escaped.replace(special, b"\\" + special)
    return escaped + b"*"


async def _chunks(keys: AsyncIterator[bytes], size: int = 1000) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
