"""The pipelined read connection, against real redis-server processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from stores.base import ReadBatch, StoreUnavailable
from stores.redis_store import RedisOnlineStore
from stores.redis_wire import PipelinedRedis, pack_command
from tests.support import RedisServer


async def test_concurrent_requests_share_connections(redis_conn: str) -> None:
    host, port = redis_conn.split(":")
    client = redis.Redis(host=host, port=int(port))
    client.mset({f"k{i}": f"v{i}" for i in range(500)})
    wire = PipelinedRedis(host, int(port), connections=2)
    try:

        async def get(i: int) -> list[object]:
            payload = pack_command(b"GET", f"k{i}".encode()) + pack_command(b"GET", b"missing")
            return await wire.execute(payload, 2)

        results = await asyncio.gather(*(get(i) for i in range(500)))
        assert results == [[f"v{i}".encode(), None] for i in range(500)]
    finally:
        await wire.close()
        client.close()


async def test_recovers_when_redis_comes_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    store = RedisOnlineStore(server.connection_string, socket_timeout=1.0)
    await store.start()
    batch = [ReadBatch([b"k"], ["v"])]
    try:
        assert await store.read(batch) == [[[None]]]
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.read(batch)
        with pytest.raises(StoreUnavailable):
            await store.read(batch)
        assert time.monotonic() - started < 1.0  # fails fast, no hanging
        server.restart()
        assert await store.read(batch) == [[[None]]]  # no restart of the store needed
    finally:
        await store.close()
        server.stop()


async def test_slow_redis_is_bounded_by_the_timeout(redis_server: RedisServer) -> None:
    store = RedisOnlineStore(redis_server.connection_string, socket_timeout=0.3)
    await store.start()
    blocker = redis.Redis(port=redis_server.port)
    try:
        loop = asyncio.get_running_loop()
        sleeping = loop.run_in_executor(None, blocker.execute_command, "DEBUG", "SLEEP", "1")
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.3"):
            await store.read([ReadBatch([b"k"], ["v"])])
        assert time.monotonic() - started < 0.6
        await sleeping
        assert await store.read([ReadBatch([b"k"], ["v"])]) == [[[None]]]
    finally:
        blocker.close()
        await store.close()


async def test_password_and_database(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--requirepass", "s3cret")
    try:
        store = RedisOnlineStore(f"{server.connection_string},db=3,password=s3cret")
        await store.start()
        from stores import codec
        from stores.base import WriteRow

        await store.write([WriteRow(b"k", "v", 1, codec.encode_record(1, {"a": 1}))])
        result = await store.read([ReadBatch([b"k"], ["v"])])
        assert codec.decode_record(result[0][0][0] or b"") == (1, {"a": 1})
        assert redis.Redis(port=server.port, password="s3cret", db=3).hget("k", "v")
        await store.close()

        wrong = RedisOnlineStore(f"{server.connection_string},password=nope")
        with pytest.raises(StoreUnavailable):
            await wrong.start()
    finally:
        server.stop()


async def test_a_key_of_another_type_is_an_error_not_a_crash(redis_conn: str) -> None:
    host, port = redis_conn.split(":")
    redis.Redis(host=host, port=int(port)).set(b"k", b"plain")
    store = RedisOnlineStore(redis_conn)
    await store.start()
    try:
        with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
            await store.read([ReadBatch([b"k"], ["v"])])
        assert await store.read([ReadBatch([b"other"], ["v"])]) == [[[None]]]
    finally:
        await store.close()
