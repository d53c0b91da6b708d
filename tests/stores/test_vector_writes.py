"""How writes keep precomputed vectors current, against SQLite and a real redis-server.

The Redis write script and stores.vectors.apply_written (SQLite) must do the same thing:
the last test runs one sequence of writes on both and compares every stored byte.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from registry.model import ProjectionSpec
from stores import codec, vectors
from stores.base import OnlineStore, ReadBatch, VectorWrite, WriteRow
from stores.precompute import ViewVectors, build_vector
from stores.redis_store import RedisOnlineStore
from stores.sqlite import SqliteOnlineStore
from tests.stores.layouts import BOTH, A, B, layout_of, view

LAYOUT = layout_of(A, B)
#: Another definition of the same service (same field, another fingerprint).
OTHER = layout_of(A, B, projections=[BOTH[1], BOTH[0]])
KEY = b"p:driver_id=1"


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


def row(view: str, ts: int, *, aware: bool = True, key: bytes = KEY, **values: Any) -> WriteRow:
    """A record of ``view``; ``aware=False`` writes it as a process that does not know
    the vector (an older registry) would."""
    parts = ViewVectors([LAYOUT], view).parts(ts, values) if aware else ()
    return WriteRow(key, view, ts, codec.encode_record(ts, values), parts)


async def fields(store: OnlineStore, *names: str, key: bytes = KEY) -> list[bytes | None]:
    return (await store.read([ReadBatch([key], names)]))[0][0]


async def vector(store: OnlineStore, key: bytes = KEY) -> bytes | None:
    return (await fields(store, LAYOUT.field, key=key))[0]


def expected(**records: tuple[int, dict[str, Any]]) -> bytes:
    return build_vector(LAYOUT, records)


async def test_writes_build_the_vector_run_by_run(store: OnlineStore) -> None:
    assert await store.write([row("a", 10, x=0.5, y=1)]) == 1
    assert await vector(store) == expected(a=(10, {"x": 0.5, "y": 1}))
    assert await store.write([row("b", 11, z="q", when=5, scores=[1.0])]) == 1
    both = expected(a=(10, {"x": 0.5, "y": 1}), b=(11, {"z": "q", "when": 5, "scores": [1.0]}))
    assert await vector(store) == both
    # Both views in one call, as a push to a shared source does.
    await store.write([row("a", 20, x=1.5, y=2), row("b", 21, z="r", when=6, scores=[])])
    assert await vector(store) == expected(
        a=(20, {"x": 1.5, "y": 2}), b=(21, {"z": "r", "when": 6, "scores": []})
    )
    assert await fields(store, vectors.INDEX_FIELD) == [b"svc:svc=a,b"]


async def test_the_newer_event_wins_in_the_vector_too(store: OnlineStore) -> None:
    await store.write([row("a", 20, x=1.0, y=1)])
    assert await store.write([row("a", 10, x=2.0, y=2)]) == 0
    assert await vector(store) == expected(a=(20, {"x": 1.0, "y": 1}))
    assert await store.write([row("a", 20, x=3.0, y=3)]) == 1  # equal times overwrite
    assert await vector(store) == expected(a=(20, {"x": 3.0, "y": 3}))


async def test_a_vector_of_another_layout_is_invalidated(store: OnlineStore) -> None:
    old = build_vector(OTHER, {"a": (5, {"x": 1.0, "y": 1})})
    digest = hashlib.sha1(codec.encode_record(5, {"x": 1.0, "y": 1})).hexdigest()
    await store.write([row("a", 5, x=1.0, y=1, aware=False)])
    written = await store.write_vectors(
        [VectorWrite(KEY, OTHER.field, old, OTHER.views_csv, (("a", digest), ("b", "")))]
    )
    assert written == [True] and await vector(store) == old
    await store.write([row("a", 6, x=2.0, y=2)])
    assert await vector(store) == vectors.INVALID
    await store.write([row("a", 7, x=2.0, y=2)])  # stays invalid until a rebuild
    assert await vector(store) == vectors.INVALID


async def test_records_that_no_vector_holds_make_it_invalid(store: OnlineStore) -> None:
    await store.write([row("b", 5, z="z", when=1, scores=[], aware=False)])
    await store.write([row("a", 6, x=1.0, y=1)])
    # A vector built from a alone would say b has no record: a read must not trust it.
    assert await vector(store) == vectors.INVALID


async def test_writers_that_do_not_know_the_vector_invalidate_it(store: OnlineStore) -> None:
    await store.write([row("a", 5, x=1.0, y=1), row("b", 5, z="z", when=1, scores=[])])
    built = await vector(store)
    assert built is not None and built[: vectors.TAG_BYTES] == LAYOUT.tag
    await store.write([row("c", 6, aware=False, n=1)])  # a view the vector does not hold
    assert await vector(store) == built
    assert await store.write([row("a", 4, x=9.0, y=9, aware=False)]) == 0  # older: not written
    assert await vector(store) == built
    await store.write([row("a", 6, x=2.0, y=2, aware=False)])
    assert await vector(store) == vectors.INVALID


async def test_rebuild_writes_only_over_unchanged_records(store: OnlineStore) -> None:
    await store.write([row("a", 5, x=1.0, y=1, aware=False, key=k) for k in (b"p:k=1", b"p:k=2")])
    read = await store.read([ReadBatch([b"p:k=1", b"p:k=2"], ["a", "b"])])
    digests = [
        tuple((v, hashlib.sha1(r).hexdigest() if r else "") for v, r in zip("ab", rec, strict=True))
        for rec in read[0]
    ]
    await store.write([row("a", 6, x=2.0, y=2, aware=False, key=b"p:k=2")])  # changes k=2
    built = expected(a=(5, {"x": 1.0, "y": 1}))
    writes = [
        VectorWrite(key, LAYOUT.field, built, LAYOUT.views_csv, d)
        for key, d in zip((b"p:k=1", b"p:k=2"), digests, strict=True)
    ]
    assert await store.write_vectors(writes) == [True, False]
    assert await vector(store, b"p:k=1") == built
    assert await vector(store, b"p:k=2") is None
    assert await fields(store, vectors.INDEX_FIELD, key=b"p:k=1") == [b"svc:svc=a,b"]
    # No records left: the vector is dropped.
    drop = VectorWrite(b"p:k=3", LAYOUT.field, None, LAYOUT.views_csv, (("a", ""), ("b", "")))
    await store.write_vectors([VectorWrite(b"p:k=3", LAYOUT.field, built, "a,b", drop.digests)])
    assert await vector(store, b"p:k=3") == built
    assert await store.write_vectors([drop]) == [True]
    assert await vector(store, b"p:k=3") is None


async def test_scan_and_count_keys(store: OnlineStore) -> None:
    keys = [b"p:driver_id=%d" % i for i in range(1200)]
    others = [b"p:customer_id=1", b"q:driver_id=1", b"p:driver_id"]
    await store.write([WriteRow(k, "v", 1, codec.encode_record(1, {})) for k in keys + others])
    seen: list[bytes] = []
    async for batch in store.scan_keys(b"p:driver_id=", 500):
        assert len(batch) <= 500
        seen += batch
    assert sorted(set(seen)) == sorted(keys)
    assert await store.count_keys(b"p:driver_id=") == 1200


async def test_redis_script_and_python_agree(redis_conn: str, tmp_path: Path) -> None:
    sqlite_store = SqliteOnlineStore(tmp_path / "online.db")
    redis_store = RedisOnlineStore(redis_conn)
    wide = view("w", *[(f"f{i}", "Int64") for i in range(20)])  # an array16 vector
    every = ProjectionSpec("w", [f"f{i}" for i in range(20)])
    layouts = [LAYOUT, layout_of(A, wide, projections=[BOTH[0], every], name="svc2")]
    steps = [[_row(layouts, "a", ts, {"x": ts / 2, "y": ts})] for ts in (5, 3, 5, 8)]
    steps.append([_row(layouts, "w", 9, {f"f{i}": i for i in range(20)})])
    steps.append([_row(layouts, "b", 9, {"z": None, "when": 1})])
    steps.append([_row([], "b", 10, {"z": "u", "when": 2})])  # an unaware writer
    steps.append([_row(layouts[1:], "w", 11, {"f0": 1})])
    for store in (sqlite_store, redis_store):
        await store.start()
        try:
            for step in steps:
                await store.write(step)
        finally:
            await store.close()
    with sqlite3.connect(tmp_path / "online.db") as db:
        in_sqlite = dict(db.execute("SELECT view, record FROM ladle_online"))
    in_redis = redis.Redis(*redis_conn.split(":")).hgetall(KEY)
    assert {k.decode(): v for k, v in in_redis.items()} == in_sqlite
    assert in_sqlite["svc:svc"] == vectors.INVALID  # the unaware write of b
    wide_vector = msgspec.msgpack.decode(in_sqlite["svc:svc2"][vectors.array_offset(2) :])
    assert wide_vector[2:] == [b"8", b"4.0", b"1"] + [b"null"] * 19


def _row(layouts: list[Any], view_name: str, ts: int, values: dict[str, Any]) -> WriteRow:
    parts = ViewVectors(layouts, view_name).parts(ts, values)
    return WriteRow(KEY, view_name, ts, codec.encode_record(ts, values), parts)
