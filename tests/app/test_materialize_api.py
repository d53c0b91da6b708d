"""POST /materialize and /materialize-incremental: windows, async runs and the 409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from registry.file_registry import file_view_lock as view_lock
from stores import timestamps
from tests.app.conftest import serve
from tests.support import write_parquet, write_repo

DEFS = """
from datetime import timedelta
from registry import Entity, FeatureView, Field, FileSource, Int64, ValueType
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
trips = FeatureView(name="trips", entities=[driver], ttl=timedelta(0),
                    schema=[Field(name="count", dtype=Int64)],
                    source=FileSource(path="data/trips.parquet", timestamp_field="ts"))
"""

# Driver 1 has rows at 01:00, 02:00 and 03:00 on 2026-01-01 (count = the hour).
DATA = """
SELECT 1::BIGINT AS driver_id, h::BIGINT AS count,
       TIMESTAMP '2026-01-01 00:00:00' + to_hours(h) AS ts
FROM range(1, 4) AS hours(h)
"""
READ = {"entities": {"driver_id": [1]}, "features": ["trips:count"]}


@pytest.fixture
def repo(tmp_path: Path, online_store_config: dict[str, object]) -> Path:
    write_repo(tmp_path, DEFS, online_store=online_store_config)
    write_parquet(tmp_path / "data/trips.parquet", DATA)
    asyncio.run(apply_repo(load_repo_config(tmp_path)))
    return tmp_path


@pytest.fixture
async def client(repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(repo):
        yield c


async def stored(client: httpx.AsyncClient) -> tuple[Any, str]:
    body = (await client.post("/get-online-features", json=READ)).json()
    return body["results"][1]["values"][0], body["results"][1]["event_timestamps"][0]


async def test_materialize_window(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/materialize",
        json={
            "start_ts": "2026-01-01T00:00:00",
            "end_ts": "2026-01-01T02:30:00",
            "feature_views": ["trips"],
        },
    )
    assert response.status_code == 200
    assert response.json() is None
    assert await stored(client) == (2, "2026-01-01T02:00:00Z")


async def test_incremental_windows(client: httpx.AsyncClient, repo: Path) -> None:
    first = await client.post("/materialize-incremental", json={"end_ts": "2026-01-01T01:30:00Z"})
    assert first.status_code == 200
    assert await stored(client) == (1, "2026-01-01T01:00:00Z")
    second = await client.post(
        "/materialize-incremental",
        json={"end_ts": "2026-01-01T05:00:00Z", "feature_views": ["trips"]},
    )
    assert second.status_code == 200
    assert await stored(client) == (3, "2026-01-01T03:00:00Z")
    window = FileRegistry(repo / "data/registry.db").read().materializations["trips"]
    assert window.start_us == timestamps.parse("2026-01-01T01:30:00Z")
    assert window.end_us == timestamps.parse("2026-01-01T05:00:00Z")


async def test_disable_event_timestamp_stamps_rows_now(client: httpx.AsyncClient) -> None:
    before = timestamps.now_us()
    response = await client.post("/materialize", json={"disable_event_timestamp": True})
    assert response.status_code == 200
    value, ts = await stored(client)
    assert value == 3
    assert timestamps.parse(ts) >= before - 1_000_000


async def test_async_materialization(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/materialize?async=true",
        json={"start_ts": "2026-01-01T00:00:00", "end_ts": "2026-01-02T00:00:00"},
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "feature_views": ["trips"]}
    for _ in range(200):
        if (await stored(client))[0] == 3:
            break
        await asyncio.sleep(0.02)
    assert await stored(client) == (3, "2026-01-01T03:00:00Z")


async def test_busy_view_is_409_unless_forced(client: httpx.AsyncClient, repo: Path) -> None:
    window = {"start_ts": "2026-01-01T00:00:00", "end_ts": "2026-01-02T00:00:00"}
    with view_lock(repo / "data", "trips"):  # as if the CLI or another worker were running
        busy = await client.post("/materialize", json=window)
        assert busy.status_code == 409
        assert busy.json()["detail"][0]["type"] == "materialization_in_progress"
        busy_async = await client.post("/materialize?async=true", json=window)
        assert busy_async.status_code == 409
        assert await stored(client) == (None, "1970-01-01T00:00:00Z")
        forced = await client.post("/materialize?force=true", json=window)
        assert forced.status_code == 200
    assert await stored(client) == (3, "2026-01-01T03:00:00Z")


@pytest.mark.parametrize(
    ("path", "payload", "status", "loc"),
    [
        (
            "/materialize",
            {"start_ts": "2026-01-02T00:00:00", "end_ts": "2026-01-01T00:00:00"},
            422,
            ["body", "start_ts"],
        ),
        ("/materialize", {"end_ts": "2026-01-01T00:00:00"}, 422, ["body", "start_ts"]),
        ("/materialize", {"start_ts": "2026-01-01", "end_ts": "someday"}, 422, ["body", "end_ts"]),
        (
            "/materialize",
            {"start_ts": "2026-01-01", "end_ts": "2026-01-02", "feature_views": ["trips", "nope"]},
            404,
            ["body", "feature_views", 1],
        ),
        ("/materialize-incremental", {}, 422, ["body", "end_ts"]),
        ("/materialize-incremental", {"end_ts": 5}, 422, ["body", "end_ts"]),
    ],
)
async def test_bad_requests(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], status: int, loc: list[Any]
) -> None:
    response = await client.post(path, json=payload)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert await stored(client) == (None, "1970-01-01T00:00:00Z")
