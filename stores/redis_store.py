"""Redis online store.

Layout: one hash per entity key (see :mod:`stores.keys`), one field per feature view,
holding that view's record (see :mod:`stores.codec`). A request reads every view of
every distinct entity in one pipeline round trip: one HMGET per distinct entity key,
naming all the views that share that key.

Writes go through a Lua script so that "newer event timestamp wins" is checked and
applied atomically inside Redis, and one write call is applied whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from registry.dsn import redact
from stores.base import OnlineStore, ReadBatch, ReadResult, StoreUnavailable, WriteRow
from stores.redis_wire import PipelinedRedis, hmget_payload, pack_bulk, pack_command

# KEYS[i] pairs with ARGV[3i-1..3i+1] = view, event_ts_us, record; ARGV[1] = key TTL seconds.
# A stored record is the MessagePack array [event_ts_us, {...}]: its event time is read from
# the bytes after the array header. Redis's cmsgpack cannot decode the whole record (it has
# no `bin` type, which Bytes values use), and need not.
_WRITE_SCRIPT = """
local int_formats = {[0xcc] = '>I1', [0xcd] = '>I2', [0xce] = '>I4', [0xcf] = '>I8',
                     [0xd0] = '>i1', [0xd1] = '>i2', [0xd2] = '>i4', [0xd3] = '>i8'}
local function event_ts(record)
  local tag = string.byte(record, 2)
  if tag <= 0x7f then return tag end
  if tag >= 0xe0 then return tag - 256 end
  return (struct.unpack(int_formats[tag], record, 3))
end
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local view = ARGV[3 * i - 1]
  local ts = tonumber(ARGV[3 * i])
  local record = ARGV[3 * i + 1]
  local current = redis.call('HGET', key, view)
  if (not current) or event_ts(current) <= ts then
    redis.call('HSET', key, view, record)
    written = written + 1
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
return written
"""
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT.encode()).hexdigest().encode()


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
            await client.script_load(_WRITE_SCRIPT)
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
        parts = [b"EVALSHA", _WRITE_SHA, b"%d" % len(rows), *(row.key for row in rows)]
        parts.append(b"%d" % self.key_ttl_seconds)
        for row in rows:
            parts += (row.view.encode(), b"%d" % row.event_ts_us, row.record)
        payload = pack_command(*parts)
        (reply,) = await self._wire.execute(payload, 1)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # Redis restarted or flushed its scripts: load it again and retry once.
            await self._wire.execute(pack_command(b"SCRIPT", b"LOAD", _WRITE_SCRIPT.encode()), 1)
            (reply,) = await self._wire.execute(payload, 1)
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"Redis write failed: {reply}")
        return int(reply)

    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        if not views:
            return
        client = self._redis()
        pattern = prefix.replace(b"\\", b"\\\\").replace(b"*", b"\\*") + b"*"
        try:
            async for batch in _chunks(client.scan_iter(match=pattern, count=1000, _type="hash")):
                pipe = client.pipeline(transaction=False)
                for key in batch:
                    pipe.hdel(key, *views)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis delete failed: {exc}") from exc


async def _chunks(keys: AsyncIterator[bytes], size: int = 1000) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
