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

from stores.base import (
    OnlineStore,
    ReadBatch,
    ReadResult,
    StoreUnavailable,
    VectorWrite,
    WriteRow,
)
from stores.redis_wire import PipelinedRedis, hmget_payload, pack_bulk, pack_command

# Shared by both scripts: the vector format of stores.vectors, in Lua.
_VECTOR_LUA = """
local INDEX = 'svc:'
local INVALID = '\\0'

local function split(vector, n)
  local offset = 10 + 8 * n
  local first = string.byte(vector, offset)
  local size = 5
  if first < 0xa0 then size = 1 elseif first == 0xdc then size = 3 end
  local chunks = {}
  local pos = offset + size
  for i = 1, 2 * n do
    local len = struct.unpack('>I4', vector, 10 + 4 * (i - 1))
    chunks[i] = string.sub(vector, pos, pos + len - 1)
    pos = pos + len
  end
  return string.sub(vector, offset, offset + size - 1), chunks
end

local function build(tag, header, chunks)
  local out = {tag}
  for i = 1, #chunks do out[#out + 1] = struct.pack('>I4', #chunks[i]) end
  out[#out + 1] = header
  for i = 1, #chunks do out[#out + 1] = chunks[i] end
  return table.concat(out)
end

local function put_index(key, field, views)
  local index = redis.call('HGET', key, INDEX) or ''
  local entry = field .. '=' .. views
  local kept = {}
  for e in string.gmatch(index, '[^;]+') do
    if e == entry then return end
    if string.sub(e, 1, #field + 1) ~= field .. '=' then kept[#kept + 1] = e end
  end
  kept[#kept + 1] = entry
  redis.call('HSET', key, INDEX, table.concat(kept, ';'))
end
"""

# KEYS[i] is an entity key; ARGV[1] = key TTL seconds, then per key: view, event_ts_us,
# record, vector count, and per vector: field, tag, run count, views (comma-joined), empty
# vector, part count, then (0-based run position, header, values) per part. Mirrors
# stores.vectors.apply_written.
_WRITE_SCRIPT = (
    _VECTOR_LUA
    + """
local ttl = tonumber(ARGV[1])
local p = 2
local written = 0
for _, key in ipairs(KEYS) do
  local view = ARGV[p]
  local ts = tonumber(ARGV[p + 1])
  local record = ARGV[p + 2]
  local count = tonumber(ARGV[p + 3])
  p = p + 4
  local current = redis.call('HGET', key, view)
  local apply = (not current) or cmsgpack.unpack(current)[1] <= ts
  if apply then
    redis.call('HSET', key, view, record)
    written = written + 1
  end
  local covered = {}
  for _ = 1, count do
    local field, tag, n, views, empty, parts = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2]),
      ARGV[p + 3], ARGV[p + 4], tonumber(ARGV[p + 5])
    p = p + 6
    covered[field] = true
    local vector = apply and redis.call('HGET', key, field)
    if apply and not vector then
      for v in string.gmatch(views, '[^,]+') do
        if v ~= view and redis.call('HEXISTS', key, v) == 1 then vector = INVALID end
      end
      if vector then
        redis.call('HSET', key, field, INVALID)
      else
        vector = empty
        put_index(key, field, views)
      end
    end
    if apply and string.sub(vector, 1, 9) ~= tag then
      if vector ~= INVALID then redis.call('HSET', key, field, INVALID) end
    elseif apply then
      local header, chunks = split(vector, n)
      for k = 0, parts - 1 do
        local i = tonumber(ARGV[p + 3 * k]) + 1
        chunks[i] = ARGV[p + 3 * k + 1]
        chunks[n + i] = ARGV[p + 3 * k + 2]
      end
      redis.call('HSET', key, field, build(tag, header, chunks))
    end
    p = p + 3 * parts
  end
  if apply then
    local index = redis.call('HGET', key, INDEX)
    if index then
      for field, views in string.gmatch(index, '([^=;]+)=([^;]*)') do
        if not covered[field] and string.find(',' .. views .. ',', ',' .. view .. ',', 1, true) then
          local vector = redis.call('HGET', key, field)
          if vector and vector ~= INVALID then redis.call('HSET', key, field, INVALID) end
        end
      end
    end
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
return written
"""
)

# KEYS[i] is an entity key; per key ARGV holds: field, vector ('' = drop the field), views
# (comma-joined), record count, then (view, SHA-1 hex of the record as read or '') pairs.
# Returns 1 per key written, 0 where a record changed since it was read.
_VECTOR_SCRIPT = (
    _VECTOR_LUA
    + """
local p = 1
local results = {}
for i, key in ipairs(KEYS) do
  local field, vector, views, count = ARGV[p], ARGV[p + 1], ARGV[p + 2], tonumber(ARGV[p + 3])
  p = p + 4
  local same = true
  for _ = 1, count do
    local record = redis.call('HGET', key, ARGV[p])
    if (record and redis.sha1hex(record) or '') ~= ARGV[p + 1] then same = false end
    p = p + 2
  end
  results[i] = same and 1 or 0
  if same and vector == '' then
    redis.call('HDEL', key, field)
  elseif same then
    redis.call('HSET', key, field, vector)
    put_index(key, field, views)
  end
end
return results
"""
)
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT.encode()).hexdigest().encode()
_VECTOR_SHA = hashlib.sha1(_VECTOR_SCRIPT.encode()).hexdigest().encode()


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
        kw = self._kwargs
        return kw.get("url") or f"{kw['host']}:{kw['port']}/{kw.get('db', 0)}"

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
            await client.script_load(_VECTOR_SCRIPT)
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
        parts = [b"%d" % self.key_ttl_seconds]
        for row in rows:
            parts += (row.view.encode(), b"%d" % row.event_ts_us, row.record)
            parts.append(b"%d" % len(row.vectors))
            for vector in row.vectors:
                parts += (
                    vector.field.encode(),
                    vector.tag,
                    b"%d" % vector.run_count,
                    vector.views.encode(),
                    vector.empty,
                    b"%d" % len(vector.runs),
                )
                for position, header, values in vector.runs:
                    parts += (b"%d" % position, header, values)
        reply = await self._eval(_WRITE_SCRIPT, _WRITE_SHA, [row.key for row in rows], parts)
        return int(reply)

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
        reply = await self._eval(_VECTOR_SCRIPT, _VECTOR_SHA, [w.key for w in writes], parts)
        return [bool(flag) for flag in reply]

    async def _eval(
        self, script: str, sha: bytes, keys: Sequence[bytes], args: Sequence[bytes]
    ) -> Any:
        if self._wire is None:
            raise StoreUnavailable("Redis online store is not started")
        payload = pack_command(b"EVALSHA", sha, b"%d" % len(keys), *keys, *args)
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
