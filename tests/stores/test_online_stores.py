"""The online store contract, run against SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stores import codec
from stores.base import OnlineStore, ReadBatch, WriteRow
from stores.redis_store import RedisOnlineStore, parse_connection_string
from stores.sqlite import SqliteOnlineStore


@pytest.fixture
async def store(
    online_store_config: dict[str, object], tmp_path: Path
) -> AsyncIterator[OnlineStore]:
    s: OnlineStore
    if online_store_config["type"] == "sqlite":
        s = SqliteOnlineStore(tmp_path / "online.db")
    else:
        s = RedisOnlineStore(str(online_store_config["connection_string"]))
    await s.start()
    yield s
    await s.close()


def row(key: bytes, view: str, ts: int, **values: object) -> WriteRow:
    return WriteRow(key, view, ts, codec.encode_record(ts, values))


def decoded(blob: bytes | None) -> object:
    return None if blob is None else codec.decode_record(blob)


async def test_read_what_was_written(store: OnlineStore) -> None:
    assert (
        await store.write(
            [row(b"k1", "v1", 10, a=1), row(b"k1", "v2", 11, b=2), row(b"k2", "v1", 12, a=3)]
        )
        == 3
    )
    result = await store.read([ReadBatch([b"k1", b"k2", b"k3"], ["v1", "v2"])])
    assert [[decoded(b) for b in per_key] for per_key in result[0]] == [
        [(10, {"a": 1}), (11, {"b": 2})],
        [(12, {"a": 3}), None],
        [None, None],
    ]


async def test_several_batches_in_one_read(store: OnlineStore) -> None:
    await store.write([row(b"a", "x", 1, f=1), row(b"b", "y", 2, g=2)])
    result = await store.read([ReadBatch([b"a"], ["x"]), ReadBatch([b"b", b"a"], ["y"])])
    assert decoded(result[0][0][0]) == (1, {"f": 1})
    assert decoded(result[1][0][0]) == (2, {"g": 2})
    assert result[1][1][0] is None


async def test_newer_event_wins(store: OnlineStore) -> None:
    await store.write([row(b"k", "v", 100, a="new")])
    assert await store.write([row(b"k", "v", 50, a="old")]) == 0
    assert decoded((await store.read([ReadBatch([b"k"], ["v"])]))[0][0][0]) == (100, {"a": "new"})
    assert await store.write([row(b"k", "v", 100, a="same time")]) == 1
    assert await store.write([row(b"k", "v", 200, a="newer")]) == 1
    assert decoded((await store.read([ReadBatch([b"k"], ["v"])]))[0][0][0]) == (200, {"a": "newer"})


@pytest.mark.parametrize(
    "ts", [0, 5, -1, -33, 200, -200, 70_000, -70_000, 2**33, -(2**33), 1795248000123456]
)
async def test_records_of_every_value_form_can_be_replaced(store: OnlineStore, ts: int) -> None:
    """Redis's Lua cmsgpack cannot decode `bin` (Bytes values): the write script used to
    fail on replacing such a record. Event times of every MessagePack int width."""
    values = {"b": b"\x00\xff" * 200, "f": 1.5, "m": {"k": [1, None]}, "s": "é" * 40}
    await store.write([row(b"k", "v", ts, **values)])
    assert await store.write([row(b"k", "v", ts - 1, **values, n=0)]) == 0  # older: kept
    assert await store.write([row(b"k", "v", ts, **values, n=1)]) == 1  # equal: replaced
    assert await store.write([row(b"k", "v", ts + 1, **values, n=2)]) == 1
    assert decoded((await store.read([ReadBatch([b"k"], ["v"])]))[0][0][0]) == (
        ts + 1,
        {**values, "n": 2},
    )


async def test_concurrent_writers_keep_the_newest(store: OnlineStore) -> None:
    writes = [store.write([row(b"k", "v", ts, a=ts)]) for ts in range(1, 201)]
    import random

    random.Random(7).shuffle(writes)
    await asyncio.gather(*writes)
    assert decoded((await store.read([ReadBatch([b"k"], ["v"])]))[0][0][0]) == (200, {"a": 200})


async def test_delete_views_of_one_project(store: OnlineStore) -> None:
    await store.write(
        [row(b"p:k", "keep", 1, a=1), row(b"p:k", "drop", 1, a=2), row(b"q:k", "drop", 1, a=3)]
    )
    if isinstance(store, RedisOnlineStore):  # a key of another type must not stop the scan
        await store._redis().set(b"p:plain-string", b"x")
    await store.delete_views(b"p:", ["drop"])
    result = await store.read([ReadBatch([b"p:k", b"q:k"], ["keep", "drop"])])
    assert decoded(result[0][0][0]) == (1, {"a": 1})
    assert result[0][0][1] is None
    assert decoded(result[0][1][1]) == (1, {"a": 3})  # another project's view is untouched


async def test_redis_reloads_a_forgotten_write_script(redis_conn: str) -> None:
    store = RedisOnlineStore(redis_conn)
    await store.start()
    try:
        await store._redis().script_flush()  # as after a Redis restart
        assert await store.write([row(b"k", "v", 1, a=1)]) == 1
    finally:
        await store.close()


async def test_large_batches(store: OnlineStore) -> None:
    rows = [row(f"k{i}".encode(), "v", i, n=i) for i in range(5000)]
    assert await store.write(rows) == 5000
    keys = [f"k{i}".encode() for i in range(0, 5000, 7)]
    result = await store.read([ReadBatch(keys, ["v"])])
    assert [decoded(r[0]) for r in result[0]] == [(i, {"n": i}) for i in range(0, 5000, 7)]


async def test_ping(store: OnlineStore) -> None:
    await store.ping()


def test_redis_connection_string_forms() -> None:
    assert parse_connection_string("localhost:6380,db=2,password=p%40ss,ssl=true") == {
        "host": "localhost",
        "port": 6380,
        "db": 2,
        "password": "p@ss",
        "ssl": True,
    }
    assert parse_connection_string("redis.internal") == {"host": "redis.internal", "port": 6379}
    assert parse_connection_string("redis://u:p@h:1/0") == {"url": "redis://u:p@h:1/0"}
    with pytest.raises(ValueError, match="bogus"):
        parse_connection_string("h:1,bogus=1")


async def test_redis_key_ttl(redis_conn: str) -> None:
    import redis.asyncio as aioredis

    store = RedisOnlineStore(redis_conn, key_ttl_seconds=100)
    await store.start()
    try:
        await store.write([row(b"p:k=1", "v", 1, a=1)])
        host, port = redis_conn.split(":")
        client = aioredis.Redis(host=host, port=int(port))
        assert 0 < await client.ttl(b"p:k=1") <= 100
        await client.aclose()
    finally:
        await store.close()
