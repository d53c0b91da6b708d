"""A registry that breaks while serving: reads go on from the last good version, and
/health and /ready say the registry is stale, for the file and the PostgreSQL backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.apply import apply_repo
from registry.config import load_repo_config
from tests.app.conftest import DEFINITIONS, build_repo, serve
from tests.support import PostgresServer, RedisServer

SQLITE = {"type": "sqlite", "path": "data/online.db"}
READ = {"entities": {"driver_id": [1001]}, "features": ["driver_profile:vehicle"]}


async def eventually(check: Callable[..., Awaitable[bool]], *args: Any) -> None:
    """Wait (up to 10 s) until ``check(*args)`` is true."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not await check(*args):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in time: {check}")
        await asyncio.sleep(0.02)


async def status(client: httpx.AsyncClient) -> str:
    return str((await client.get("/ready")).json()["status"])


async def assert_ready(client: httpx.AsyncClient, version: int) -> None:
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "registry": {"version": version, "problem": None, "stale_seconds": None},
        "online_store": {"problem": None},
    }
    health = await client.get("/health")
    assert (health.status_code, health.content) == (200, b"")  # Feast's answer


async def assert_degraded(client: httpx.AsyncClient, version: int, problem: str) -> None:
    """Still serving (200 on reads, health and readiness); the bodies say what is wrong."""
    read = await client.post("/get-online-features", json=READ)
    assert read.status_code == 200
    assert read.json()["results"][1]["values"] == ["sedan"]
    for route in ("/ready", "/health"):
        response = await client.get(route)
        assert response.status_code == 200, route
        body: dict[str, Any] = response.json()
        assert body["status"] == "degraded"
        assert body["registry"]["version"] == version
        assert problem in body["registry"]["problem"]
        assert body["registry"]["stale_seconds"] >= 0
        assert body["online_store"] == {"problem": None}
        assert PostgresServer.PASSWORD not in response.text


async def test_file_registry_corrupt_then_deleted_while_serving(tmp_path: Path) -> None:
    root = await build_repo(tmp_path / "repo", SQLITE)
    registry_file = root / "data/registry.db"
    async for client in serve(root, registry_ttl_sec=0.05):
        await assert_ready(client, 2)  # apply, then the materialization record

        registry_file.write_text('{"project": "test_pro')
        await eventually(_is, client, "degraded")
        await assert_degraded(client, 2, "is corrupt")

        registry_file.unlink()
        await eventually(_problem_has, client, "does not exist")
        await assert_degraded(client, 2, "does not exist; run `ladle apply`")

        await apply_repo(load_repo_config(root))  # a fresh file: version 1 again
        await eventually(_is, client, "ready")
        await assert_ready(client, 1)


async def test_sql_registry_down_while_serving_then_back(
    tmp_path: Path, postgres_server: PostgresServer, pg_url: str
) -> None:
    registry = {"registry_type": "sql", "path": pg_url}
    root = await build_repo(tmp_path / "repo", SQLITE, registry)
    async for client in serve(root, registry_ttl_sec=0.05):
        await assert_ready(client, 2)  # apply, then the materialization record

        postgres_server.stop()
        await eventually(_is, client, "degraded")
        await assert_degraded(client, 2, "cannot be reached")
        for _ in range(3):  # keeps answering while the registry stays down
            await asyncio.sleep(0.1)
            await assert_degraded(client, 2, "cannot be reached")
        materialize = await client.post("/materialize-incremental", json={"end_ts": "2030-01-01"})
        assert materialize.status_code == 503
        assert materialize.json()["detail"][0]["type"] == "registry_unavailable"
        assert PostgresServer.PASSWORD not in materialize.text

        postgres_server.start()
        await eventually(_is, client, "ready")
        await assert_ready(client, 2)

        # A new version arrives through the version check.
        (root / "features.py").write_text(
            DEFINITIONS
            + """
driver_extra = FeatureView(name="driver_extra", entities=[driver],
                           schema=[Field(name="rating", dtype=Float64)], source=profile_source)
"""
        )
        await apply_repo(load_repo_config(root))
        extra = {"entities": {"driver_id": [1001]}, "features": ["driver_extra:rating"]}

        await eventually(_answers, client, extra)
        await assert_ready(client, 3)


async def _answers(client: httpx.AsyncClient, request: dict[str, Any]) -> bool:
    return (await client.post("/get-online-features", json=request)).status_code == 200


async def _is(client: httpx.AsyncClient, expected: str) -> bool:
    return await status(client) == expected


async def _problem_has(client: httpx.AsyncClient, text: str) -> bool:
    problem = (await client.get("/ready")).json()["registry"]["problem"]
    return problem is not None and text in problem


@pytest.mark.parametrize("route", ["/ready", "/health"])
async def test_unreachable_store_fails_readiness_but_not_liveness(
    tmp_path: Path, route: str
) -> None:
    server = RedisServer(tmp_path)
    try:
        root = await build_repo(
            tmp_path / "repo", {"type": "redis", "connection_string": server.connection_string}
        )
        async for client in serve(root):
            assert (await client.get(route)).status_code == 200
            server.stop()
            response = await client.get(route)
            assert response.status_code == (503 if route == "/ready" else 200)
            body = response.json()
            assert body["status"] == "unavailable"
            assert body["registry"] == {"version": 2, "problem": None, "stale_seconds": None}
            assert "Redis" in body["online_store"]["problem"]
            server.restart()
            await eventually(_is, client, "ready")
    finally:
        if server.process.poll() is None:
            server.stop()


async def test_health_names_a_stale_registry_next_to_an_unreachable_store(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path)
    try:
        root = await build_repo(
            tmp_path / "repo", {"type": "redis", "connection_string": server.connection_string}
        )
        async for client in serve(root, registry_ttl_sec=0.05):
            (root / "data/registry.db").unlink()
            await eventually(_is, client, "degraded")
            server.stop()
            response = await client.get("/health")
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "unavailable"
            assert "does not exist" in body["registry"]["problem"]
            assert "Redis" in body["online_store"]["problem"]
    finally:
        if server.process.poll() is None:
            server.stop()
