"""Configured limits answer 413 or 422 with a clear message, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from registry.apply import apply_repo
from registry.config import load_repo_config
from tests.app.conftest import serve
from tests.support import write_parquet, write_repo

DEFS = """
from registry import Entity, FeatureView, Field, FileSource, Int64, PushSource, ValueType
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(path="data/trips.parquet", timestamp_field="ts")
trips = FeatureView(name="trips", entities=[driver],
                    schema=[Field(name="count", dtype=Int64), Field(name="other", dtype=Int64),
                            Field(name="third", dtype=Int64)],
                    source=PushSource(name="trips_push", batch_source=source))
"""
LIMITS = {"max_body_bytes": 300_000, "max_entity_rows": 3, "max_features": 2, "max_write_rows": 2}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    write_repo(tmp_path, DEFS, extra_config={"feature_server": {"limits": LIMITS}})
    write_parquet(
        tmp_path / "data/trips.parquet",
        "SELECT 1::BIGINT AS driver_id, "
        "1::BIGINT AS count, 1::BIGINT AS other, 1::BIGINT AS third, "
        "TIMESTAMP '2026-01-01' AS ts",
    )
    await apply_repo(load_repo_config(tmp_path))
    async for c in serve(tmp_path):
        yield c


def read(ids: list[int], features: list[str] | None = None) -> dict[str, object]:
    return {"entities": {"driver_id": ids}, "features": features or ["trips:count"]}


def push(count: int) -> dict[str, object]:
    return {
        "push_source_name": "trips_push",
        "df": {
            "driver_id": list(range(count)),
            "ts": ["2026-02-01T00:00:00Z"] * count,
            "count": [1] * count,
            "other": [1] * count,
            "third": [1] * count,
        },
    }


async def expect(response: httpx.Response, status: int, kind: str, setting: str = "") -> None:
    assert response.status_code == status, response.text
    (detail,) = response.json()["detail"]
    assert detail["type"] == kind
    assert setting in detail["msg"]


async def test_limits(client: httpx.AsyncClient) -> None:
    url = "/get-online-features"
    assert (await client.post(url, json=read([1, 2, 3]))).status_code == 200
    await expect(
        await client.post(url, json=read([1, 2, 3, 4])), 422, "too_many", "max_entity_rows"
    )
    await expect(
        await client.post(url, json=read([1], ["trips:count", "trips:other", "trips:third"])),
        422,
        "too_many",
        "max_features",
    )
    await expect(
        await client.post(url, content=b"{" + b" " * 400_000 + b"}"),
        413,
        "body_too_large",
        "max_body_bytes",
    )
    assert (await client.post("/push", json=push(2))).status_code == 200
    await expect(await client.post("/push", json=push(3)), 422, "too_many", "max_write_rows")


async def test_deep_nesting_is_a_422(client: httpx.AsyncClient) -> None:
    deep = b'{"entities":{"driver_id":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await client.post("/get-online-features", content=deep)
    await expect(response, 422, "too_deep")
