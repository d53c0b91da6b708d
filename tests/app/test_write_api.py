"""POST /push and /write-to-online-store against both stores."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.conftest import serve
from tests.support import write_parquet, write_repo

DEFS = """
from datetime import timedelta
from registry import (Entity, FeatureView, Field, FileSource, Float32, Int64, Map, PushSource,
                      String, ValueType)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",
                    created_timestamp_column="created")
push_source = PushSource(name="stats_push", batch_source=source)
schema = [Field(name="conv_rate", dtype=Float32), Field(name="trips", dtype=Int64),
          Field(name="note", dtype=String), Field(name="meta", dtype=Map)]
stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=3650), schema=schema,
                    source=source)
stats_fresh = FeatureView(name="stats_fresh", entities=[driver], ttl=timedelta(days=3650),
                          schema=schema[:2], source=push_source)
"""

DATA = """
SELECT 1001::BIGINT AS driver_id, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS event_timestamp,
       TIMESTAMP '2026-01-01 00:00:00' AS created, 0.5::FLOAT AS conv_rate, 1::BIGINT AS trips,
       'seed' AS note, MAP {'k': 'v'} AS meta
"""

READ = {
    "entities": {"driver_id": [1001, 1002]},
    "features": ["stats_fresh:conv_rate", "stats_fresh:trips"],
}


def frame(ids: list[int], ts: str = "2026-02-01T00:00:00Z", **overrides: Any) -> dict[str, Any]:
    df: dict[str, Any] = {
        "driver_id": ids,
        "event_timestamp": [ts] * len(ids),
        "created": [ts] * len(ids),
        "conv_rate": [0.25] * len(ids),
        "trips": [i - 1000 for i in ids],
    }
    df.update(overrides)
    return df


@pytest.fixture
async def client(
    tmp_path: Path, online_store_config: dict[str, object]
) -> AsyncIterator[httpx.AsyncClient]:
    write_repo(tmp_path, DEFS, online_store=online_store_config)
    write_parquet(tmp_path / "data/stats.parquet", DATA)
    from registry.apply import apply_repo
    from registry.config import load_repo_config

    await apply_repo(load_repo_config(tmp_path))
    async for c in serve(tmp_path):
        c.headers["x-repo"] = str(tmp_path)
        yield c


async def values(client: httpx.AsyncClient, read: dict[str, Any] = READ) -> list[Any]:
    body = (await client.post("/get-online-features", json=read)).json()
    return [(r["values"], r["statuses"]) for r in body["results"][1:]]


async def test_push_then_read(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/push", json={"push_source_name": "stats_push", "df": frame([1001, 1002])}
    )
    assert response.status_code == 200
    assert response.content == b""
    assert await values(client) == [
        ([0.25, 0.25], ["PRESENT", "PRESENT"]),
        ([1, 2], ["PRESENT", "PRESENT"]),
    ]
    body = (await client.post("/get-online-features", json=READ)).json()
    assert body["results"][1]["event_timestamps"] == ["2026-02-01T00:00:00Z"] * 2


async def test_timestamps_with_or_without_offset(client: httpx.AsyncClient) -> None:
    df = frame([1001, 1002])
    df["event_timestamp"] = ["2026-02-01T00:00:00", "2026-02-01T01:00:00+01:00"]
    assert (
        await client.post("/push", json={"push_source_name": "stats_push", "df": df})
    ).status_code == 200
    body = (await client.post("/get-online-features", json=READ)).json()
    assert body["results"][1]["event_timestamps"] == ["2026-02-01T00:00:00Z"] * 2


async def test_older_push_never_overwrites(client: httpx.AsyncClient) -> None:
    push = {"push_source_name": "stats_push"}
    await client.post("/push", json={**push, "df": frame([1001], "2026-03-01T00:00:00Z")})
    old = frame([1001], "2026-02-01T00:00:00Z", trips=[999])
    assert (await client.post("/push", json={**push, "df": old})).status_code == 200
    assert (await values(client))[1][0] == [1, None]


async def test_newest_wins_under_concurrent_pushes(client: httpx.AsyncClient) -> None:
    pushes = []
    for minute in range(60):
        df = frame([1001], f"2026-02-01T00:{minute:02d}:00Z", trips=[minute])
        pushes.append({"push_source_name": "stats_push", "df": df})
    random.Random(3).shuffle(pushes)
    responses = await asyncio.gather(*(client.post("/push", json=p) for p in pushes))
    assert {r.status_code for r in responses} == {200}
    assert (await values(client))[1][0] == [59, None]


BAD_PUSHES = [
    ({"df": frame([1001, 1002], trips=[1, "many"])}, ["body", "df", "trips", 1]),
    (
        {"df": frame([1001, 1002], event_timestamp=["2026-02-01", "soon"])},
        ["body", "df", "event_timestamp", 1],
    ),
    ({"df": {k: v for k, v in frame([1001]).items() if k != "trips"}}, ["body", "df", "trips"]),
    ({"df": frame([1001, 1002], conv_rate=[0.1])}, ["body", "df", "conv_rate"]),
    ({"df": frame([1001, 1002], driver_id=[1001, None])}, ["body", "df", "driver_id", 1]),
    ({"df": {}}, ["body", "df"]),
    ({"df": frame([1001], event_timestamp=[10**13])}, ["body", "df", "event_timestamp", 0]),
    ({"df": frame([1001], meta=[{"n": 2**70}])}, ["body", "df", "meta", 0]),
    ({"df": frame([1001]), "to": "nowhere"}, ["body", "to"]),
    ({"df": frame([1001]), "push_source_name": "nope"}, ["body", "push_source_name"]),
    ({}, ["body", "df"]),
]


@pytest.mark.parametrize(("payload", "loc"), BAD_PUSHES)
async def test_rejected_push_writes_nothing(
    client: httpx.AsyncClient, payload: dict[str, Any], loc: list[Any]
) -> None:
    request = {"push_source_name": "stats_push", "to": "online_and_offline", **payload}
    response = await client.post("/push", json=request)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert await values(client) == [([None, None], ["NOT_FOUND", "NOT_FOUND"])] * 2
    repo = Path(client.headers["x-repo"])
    assert not (repo / "data/stats.parquet.d").exists()


async def test_offline_push_then_materialize(client: httpx.AsyncClient) -> None:
    # No offset: taken as UTC, offline as online.
    df = frame([1002], "2026-02-01T00:00:00", note=["pushed"], meta=[{"a": "b"}])
    response = await client.post(
        "/push", json={"push_source_name": "stats_push", "df": df, "to": "offline"}
    )
    assert response.status_code == 200
    assert await values(client) == [([None, None], ["NOT_FOUND", "NOT_FOUND"])] * 2
    response = await client.post(
        "/materialize",
        json={
            "start_ts": "2025-01-01T00:00:00",
            "end_ts": "2027-01-01T00:00:00",
            "feature_views": ["stats"],
        },
    )
    assert response.status_code == 200
    read = {
        "entities": {"driver_id": [1001, 1002]},
        "features": ["stats:trips", "stats:note", "stats:meta"],
    }
    assert await values(client, read) == [
        ([1, 2], ["PRESENT", "PRESENT"]),
        (["seed", "pushed"], ["PRESENT", "PRESENT"]),
        ([{"k": "v"}, {"a": "b"}], ["PRESENT", "PRESENT"]),
    ]
    body = (await client.post("/get-online-features", json=read)).json()
    assert body["results"][1]["event_timestamps"][1] == "2026-02-01T00:00:00Z"


async def test_write_to_online_store(client: httpx.AsyncClient) -> None:
    df = frame([1001], note=["direct"], meta=[{"x": "y"}])
    response = await client.post(
        "/write-to-online-store", json={"feature_view_name": "stats", "df": df}
    )
    assert response.status_code == 200
    assert response.json() is None
    read = {"entities": {"driver_id": [1001]}, "features": ["stats:note", "stats:meta"]}
    assert await values(client, read) == [(["direct"], ["PRESENT"]), ([{"x": "y"}], ["PRESENT"])]

    bad = await client.post(
        "/write-to-online-store", json={"feature_view_name": "stats", "df": frame([1001])}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "df", "note"]
    unknown = await client.post(
        "/write-to-online-store", json={"feature_view_name": "nope", "df": df}
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"][0]["loc"] == ["body", "feature_view_name"]


async def test_created_time_breaks_ties_within_a_push(client: httpx.AsyncClient) -> None:
    df = frame([1001, 1001], trips=[7, 8])
    df["created"] = ["2026-02-01T00:00:05Z", "2026-02-01T00:00:01Z"]  # the first is newer
    response = await client.post("/push", json={"push_source_name": "stats_push", "df": df})
    assert response.status_code == 200
    assert (await values(client))[1][0] == [7, None]


async def test_offline_push_follows_field_mapping(tmp_path: Path) -> None:
    defs = DEFS.replace(
        'source = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",',
        'source = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",\n'
        '                    field_mapping={"trips_raw": "trips"},',
    )
    write_repo(tmp_path, defs)
    write_parquet(tmp_path / "data/stats.parquet", DATA.replace("AS trips", "AS trips_raw"))
    from registry.apply import apply_repo
    from registry.config import load_repo_config

    await apply_repo(load_repo_config(tmp_path))
    async for client in serve(tmp_path):
        df = frame([1002], trips=[42], note=["n"], meta=[{"a": "b"}])
        push = {"push_source_name": "stats_push", "df": df, "to": "offline"}
        assert (await client.post("/push", json=push)).status_code == 200
        window = {"start_ts": "2025-01-01T00:00:00", "end_ts": "2027-01-01T00:00:00"}
        assert (await client.post("/materialize", json=window)).status_code == 200
        read = {"entities": {"driver_id": [1001, 1002]}, "features": ["stats:trips"]}
        assert await values(client, read) == [([1, 42], ["PRESENT", "PRESENT"])]
