"""The suite's generated repo applies, materializes and serves every scenario's request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench import suite_data, suite_spec
from bench.floor_app import create_floor_app
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us

ENTITIES = 25


@pytest.fixture
async def client(tmp_path: Path, redis_conn: str) -> AsyncIterator[httpx.AsyncClient]:
    repo = tmp_path / "repo"
    assert suite_data.main(["--repo", str(repo), "--redis", redis_conn, "--entities", "25"]) == 0
    settings = load_repo_config(repo)
    await apply_repo(settings)
    store = create_online_store(settings)
    await store.start()
    try:
        results = await materialize(
            FileRegistry(settings.registry_path), FileOfflineStore(repo), store, None, now_us(), 0
        )
    finally:
        await store.close()
    assert sorted((r.view, r.written) for r in results) == [
        (view.name, ENTITIES) for view in sorted(suite_spec.VIEWS, key=lambda v: v.name)
    ]
    app = create_floor_app(repo)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ladle") as c:
            yield c


def _body(scenario: suite_spec.Scenario, ids: list[int]) -> dict[str, object]:
    body: dict[str, object] = {"entities": {suite_spec.JOIN_KEY: ids}}
    if scenario.service:
        body["feature_service"] = scenario.service
    else:
        body["features"] = suite_spec.all_refs()
    return body


async def test_every_scenario_is_answered_in_full(client: httpx.AsyncClient) -> None:
    ids = [suite_spec.ID_START, suite_spec.ID_START + ENTITIES - 1]
    names = [name for view in suite_spec.VIEWS for name, _ in view.features]
    for scenario in suite_spec.SCENARIOS:
        reply = await client.post(scenario.path, json=_body(scenario, ids))
        assert reply.status_code == 200, (scenario.name, reply.text)
        if scenario.floor:
            continue
        data = reply.json()
        assert data["metadata"]["feature_names"] == [suite_spec.JOIN_KEY, *names]
        assert data["results"][0]["values"] == ids
        for column in data["results"][1:]:
            assert column["statuses"] == ["PRESENT", "PRESENT"]
            assert None not in column["values"]


async def test_values_have_the_declared_types(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/get-online-features",
        json={"entities": {suite_spec.JOIN_KEY: [3]}, "features": suite_spec.VIEWS[0].refs()},
    )
    values = {
        name: column["values"][0]
        for name, column in zip(
            reply.json()["metadata"]["feature_names"], reply.json()["results"], strict=True
        )
    }
    prefix = suite_spec.VIEWS[0].prefix
    assert isinstance(values[f"{prefix}_int64"], int)
    assert isinstance(values[f"{prefix}_float64"], float)
    assert isinstance(values[f"{prefix}_bool"], bool)
    assert values[f"{prefix}_string"].startswith("segment-")
    assert values[f"{prefix}_timestamp"].endswith("Z")
    assert len(values[f"{prefix}_int64_list"]) == 5
    assert len(values[f"{prefix}_string_list"]) == 3


async def test_the_push_source_accepts_the_push_columns(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    meta = suite_data.meta(suite_spec.ID_START, ENTITIES)
    push = meta["push"]
    columns = dict(item.split(":", 1) for item in push["columns"].split(","))
    samples: dict[str, object] = {
        "Int64": 7, "Int32": 8, "Float64": 0.25, "Float32": 0.5, "String": "pushed",
        "Bool": True, "UnixTimestamp": "2026-01-02T03:04:05Z", "Array(Int64)": [1, 2],
        "Array(Float64)": [0.5], "Array(String)": ["a"],
    }  # fmt: skip
    df: dict[str, list[object]] = {
        suite_spec.JOIN_KEY: [4],
        "event_timestamp": ["2099-01-01T00:00:00Z"],
        "created": ["2099-01-01T00:00:00"],
    }
    df.update({name: [samples[dtype]] for name, dtype in columns.items()})
    reply = await client.post(
        "/push", json={"push_source_name": push["source"], "df": df, "to": "online"}
    )
    assert reply.status_code == 200, reply.text
    read = await client.post(
        "/get-online-features",
        json={"entities": {suite_spec.JOIN_KEY: [4]}, "features": suite_spec.VIEWS[0].refs()},
    )
    got = [column["values"][0] for column in read.json()["results"][1:]]
    assert got == [samples[dtype] for dtype in columns.values()]
