"""Configured limits answer 413 or 422 with a clear message, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.limits import nesting_depth, too_deep
from registry.apply import apply_repo
from registry.config import ConfigError, load_repo_config, parse_repo_config
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
LIMITS = {
    "max_body_bytes": 300_000,
    "max_entity_rows": 3,
    "max_features": 2,
    "max_write_rows": 2,
    "max_nesting_depth": 6,
}


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
    await expect(response, 422, "too_deep", "max_nesting_depth")


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_nesting_depth_limit(client: httpx.AsyncClient) -> None:
    """The body's top level is depth 1; an extra df column is ignored online."""
    body = push(1)
    body["df"]["extra"] = [nested(3)]  # type: ignore[index]  # depth 1 + 1 + 1 + 3 = 6
    assert (await client.post("/push", json=body)).status_code == 200
    body["df"]["extra"] = [nested(4)]  # type: ignore[index]
    await expect(await client.post("/push", json=body), 422, "too_deep", "max_nesting_depth")
    # Brackets inside strings are not nesting, however many.
    body["df"]["extra"] = ['[{"\\' * 50]  # type: ignore[index]
    assert (await client.post("/push", json=body)).status_code == 200


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"{}", 1),
        (b'{"a":[[1],[2,[3]]]}', 4),
        (b'{"a":"[[[[{{"}', 1),
        (rb'{"a":"\"[[[["}', 1),  # an escaped quote does not end the string
        (rb'{"a":"\\", "b":[[1]]}', 3),  # an escaped backslash does not escape the quote
        (rb'{"a":"\\\"[[", "b":[[1]]}', 3),
        (b"[" * 40, 40),  # invalid JSON still gets a depth; the decoder reports the rest
    ],
)
def test_nesting_depth(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth
    assert too_deep(body, 2) is (depth > 2)


@pytest.mark.parametrize("setting", sorted(LIMITS))
def test_limits_must_be_positive(setting: str) -> None:
    raw = {"project": "p", "feature_server": {"limits": {setting: 0}}}
    with pytest.raises(ConfigError, match=f"feature_server.limits.{setting}: Expected `int` >= 1"):
        parse_repo_config(raw, "feature_store.yaml")


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from app import create_app

    write_repo(tmp_path, DEFS)
    write_parquet(
        tmp_path / "data/trips.parquet",
        "SELECT 1::BIGINT AS driver_id, 1::BIGINT AS count, 1::BIGINT AS other, "
        "1::BIGINT AS third, TIMESTAMP '2026-01-01' AS ts",
    )
    await apply_repo(load_repo_config(tmp_path))
    app = create_app(tmp_path)
    messages = iter(
        [
            {"type": "http.request", "body": b'{"entities": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/get-online-features",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "app": app,
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
    assert b"client_disconnected" in sent[1]["body"]  # type: ignore[operator]
    assert "unhandled error" not in caplog.text
