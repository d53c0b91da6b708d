"""GET /health: 200 with an empty body while serving, a status body when degraded, and 503
only without a registry."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from app.asgi import _api_error
from app.errors import ApiError
from app.health import health, ready
from app.state import ServingState
from tests.app.conftest import build_repo, serve
from tests.support import RedisServer, write_repo

DEFS = """
from registry import Entity, FeatureView, Field, FileSource, Int64, ValueType
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FeatureView(name="stats", entities=[driver], schema=[Field(name="trips", dtype=Int64)],
                    source=FileSource(path="data/stats.parquet", timestamp_field="ts"))
"""


async def test_health_is_ok_while_serving(repo: Path) -> None:
    async for client in serve(repo):
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.content == b""


async def test_health_reports_an_unreachable_store(tmp_path: Path) -> None:
    # A private Redis that we stop while the app is serving.
    server = RedisServer(tmp_path)
    root = await build_repo(
        tmp_path / "repo", {"type": "redis", "connection_string": server.connection_string}
    )
    try:
        async for client in serve(root):
            assert (await client.get("/health")).status_code == 200
            server.stop()
            # Liveness stays up (a restart cannot bring Redis back) and says what is wrong.
            response = await client.get("/health")
            assert response.status_code == 200
            assert response.json()["status"] == "unavailable"
            assert "Redis" in response.json()["online_store"]["problem"]
            assert (await client.get("/ready")).status_code == 503
            read = await client.post(
                "/get-online-features",
                json={"entities": {"driver_id": [1001]}, "features": ["driver_profile:rating"]},
            )
            assert read.status_code == 503
            assert read.json()["detail"][0]["type"] == "store_unavailable"
    finally:
        if server.process.poll() is None:
            server.stop()


async def test_health_without_registry_snapshot(tmp_path: Path) -> None:
    write_repo(tmp_path, DEFS)
    state = ServingState.from_repo(tmp_path, None)
    assert state.snapshot is None  # never loaded: the route must say so
    app = Starlette(
        routes=[Route("/health", health), Route("/ready", ready)],
        exception_handlers={ApiError: _api_error},
    )
    app.state.ladle = state
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/health")
        not_ready = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["detail"][0]["type"] == "registry_unavailable"
    assert not_ready.status_code == 503
    body = not_ready.json()
    assert body["status"] == "unavailable"
    assert body["registry"] == {
        "version": None,
        "problem": "the registry is not loaded",
        "stale_seconds": None,
    }
