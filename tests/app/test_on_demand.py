"""On-demand feature views: request data, computed columns, write-time views, artifacts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.artifacts import ArtifactsFailed
from app.transformations import TransformationsUnavailable
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.repo import RepoError
from tests.app.conftest import serve
from tests.support import apply_now, free_port, run_cli, write_parquet, write_repo

DEFS = """
from datetime import timedelta
from typing import Any
from registry import (Entity, FeatureService, FeatureView, Field, FileSource, Float64, Int64,
                      PushSource, RequestSource, String, ValueType, artifacts,
                      on_demand_feature_view)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(path="data/stats.parquet", timestamp_field="ts")
push = PushSource(name="stats_push", batch_source=source)
stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=3650),
                    schema=[Field(name="rate", dtype=Float64), Field(name="trips", dtype=Int64)],
                    source=push)
request = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(sources=[stats[["rate"]], request],
                        schema=[Field(name="rate_plus", dtype=Float64),
                                Field(name="label", dtype=String)])
def adjusted(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"rate_plus": [r + b for r, b in zip(inputs["rate"], inputs["bonus"])],
            "label": [f"driver-{d}" for d in inputs["driver_id"]]}


@on_demand_feature_view(sources=[stats], schema=[Field(name="ratio", dtype=Float64)],
                        singleton=True)
def per_trip(row: dict[str, Any]) -> dict[str, Any]:
    return {"ratio": row["rate"] / row["trips"]}


@on_demand_feature_view(sources=[stats, request], schema=[Field(name="scaled", dtype=Float64)],
                        write_to_online_store=True)
def stored_scaled(inputs: dict[str, Any]) -> dict[str, Any]:
    factor = artifacts.get("factor", 1)
    return {"scaled": [r * factor + b for r, b in zip(inputs["rate"], inputs["bonus"])]}


@on_demand_feature_view(sources=[stats], schema=[Field(name="boom", dtype=Float64)])
def broken(inputs: dict[str, Any]) -> dict[str, Any]:
    if any(r > 0.35 for r in inputs["rate"]):
        raise RuntimeError("transformation bug")
    return {"boom": ["not a number" for _ in inputs["rate"]]}


@on_demand_feature_view(sources=[request], schema=[Field(name="bonus_x2", dtype=Float64)])
def request_only(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"bonus_x2": [b * 2 for b in inputs["bonus"]]}


service = FeatureService(name="svc", features=[stats[["trips"]], adjusted])
"""

ARTIFACTS = """
from registry import artifacts

def load_artifacts(app):
    artifacts["factor"] = 10
    app.state.loaded = True
"""

DATA = """
SELECT * FROM (VALUES (1::BIGINT, 0.25::DOUBLE, 5::BIGINT), (2, 0.5, 10), (3, 0.3, 0))
    AS t(driver_id, rate, trips), (SELECT TIMESTAMP '2026-01-01' AS ts)
"""
URL = "/get-online-features"


def make_repo(root: Path, online_store: dict[str, object], artifacts: str = ARTIFACTS) -> Path:
    write_repo(root, DEFS, online_store=online_store)
    (root / "static_artifacts.py").write_text(artifacts)
    write_parquet(root / "data/stats.parquet", DATA)
    apply_now(root)
    run_cli("materialize", "2025-01-01T00:00:00", "2027-01-01T00:00:00", "-v", "stats", cwd=root)
    return root


@pytest.fixture
async def client(
    tmp_path: Path, online_store_config: dict[str, object]
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(make_repo(tmp_path, online_store_config)):
        yield c


async def read(client: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(URL, json=payload)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_computed_features_with_request_data(client: httpx.AsyncClient) -> None:
    body = await read(
        client,
        {
            "entities": {"driver_id": [1, 2, 99], "bonus": [1.0, 2.0, 3.0]},
            "features": ["adjusted:rate_plus", "stats:trips", "adjusted:label"],
        },
    )
    assert body["metadata"]["feature_names"] == ["driver_id", "rate_plus", "trips", "label"]
    ids, rate_plus, trips, label = body["results"]
    assert ids["values"] == [1, 2, 99]  # request data ("bonus") is not echoed
    assert rate_plus["values"] == [1.25, 2.5, None]
    assert rate_plus["statuses"] == ["PRESENT", "PRESENT", "NULL_VALUE"]  # 99: no input
    assert rate_plus["event_timestamps"] == ["1970-01-01T00:00:00Z"] * 3
    assert trips["values"] == [5, 10, None]
    assert label["values"] == ["driver-1", "driver-2", None]


async def test_feature_service_and_full_names(client: httpx.AsyncClient) -> None:
    body = await read(
        client,
        {
            "entities": {"driver_id": [2], "bonus": [0.5]},
            "feature_service": "svc",
            "full_feature_names": True,
        },
    )
    assert body["metadata"]["feature_names"] == [
        "driver_id",
        "stats__trips",
        "adjusted__rate_plus",
        "adjusted__label",
    ]
    assert [r["values"][0] for r in body["results"]] == [2, 10, 1.0, "driver-2"]


async def test_a_view_of_request_data_only(client: httpx.AsyncClient) -> None:
    # Nothing to read from the store; other requests keep their replies (Redis shares a
    # connection between requests).
    only, normal = await asyncio.gather(
        client.post(
            URL, json={"entities": {"bonus": [1.5, 2.0]}, "features": ["request_only:bonus_x2"]}
        ),
        client.post(URL, json={"entities": {"driver_id": [1]}, "features": ["stats:trips"]}),
    )
    assert only.status_code == 200, only.text
    assert only.json()["metadata"]["feature_names"] == ["bonus_x2"]
    assert only.json()["results"][0]["values"] == [3.0, 4.0]
    assert normal.json()["results"][1]["values"] == [5]


async def test_singleton_mode(client: httpx.AsyncClient) -> None:
    body = await read(client, {"entities": {"driver_id": [1, 2]}, "features": ["per_trip:ratio"]})
    assert body["results"][1]["values"] == [0.05, 0.05]


async def test_missing_request_data_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, json={"entities": {"driver_id": [1]}, "features": ["adjusted:rate_plus"]}
    )
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["type"] == "missing_request_data"
    assert detail["loc"] == ["body", "entities", "bonus"]
    bad = await client.post(
        URL,
        json={"entities": {"driver_id": [1], "bonus": ["x"]}, "features": ["adjusted:rate_plus"]},
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "entities", "bonus", 0]


async def test_a_failing_transformation_is_a_500_naming_the_view(
    client: httpx.AsyncClient,
) -> None:
    raised = await client.post(
        URL, json={"entities": {"driver_id": [2]}, "features": ["broken:boom"]}
    )
    assert raised.status_code == 500
    (detail,) = raised.json()["detail"]
    assert detail["type"] == "transformation_failed"
    assert "'broken'" in detail["msg"] and "transformation bug" in detail["msg"]
    wrong_type = await client.post(
        URL, json={"entities": {"driver_id": [1]}, "features": ["broken:boom"]}
    )
    assert wrong_type.status_code == 500
    assert "output 'boom'" in wrong_type.json()["detail"][0]["msg"]
    # The worker keeps serving.
    assert (
        await client.post(URL, json={"entities": {"driver_id": [1]}, "features": ["stats:trips"]})
    ).status_code == 200


async def test_write_time_view_is_computed_at_push_and_stored(
    client: httpx.AsyncClient,
) -> None:
    df = {
        "driver_id": [7],
        "ts": ["2026-03-01T00:00:00Z"],
        "rate": [0.5],
        "trips": [2],
        "bonus": [0.25],
    }
    response = await client.post("/push", json={"push_source_name": "stats_push", "df": df})
    assert response.status_code == 200, response.text
    body = await read(
        client, {"entities": {"driver_id": [7]}, "features": ["stored_scaled:scaled"]}
    )
    # factor 10 comes from static_artifacts.py: 0.5 * 10 + 0.25
    assert body["results"][1] == {
        "values": [5.25],
        "statuses": ["PRESENT"],
        "event_timestamps": ["2026-03-01T00:00:00Z"],
    }
    missing = {k: v for k, v in df.items() if k != "bonus"}
    response = await client.post("/push", json={"push_source_name": "stats_push", "df": missing})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "df", "bonus"]


async def test_changed_transformation_is_refused(
    tmp_path: Path, online_store_config: dict[str, object]
) -> None:
    root = make_repo(tmp_path, online_store_config)
    source = (root / "features.py").read_text()
    (root / "features.py").write_text(
        source.replace("r / row", "r * 2 / row").replace(
            'row["rate"] / row["trips"]', 'row["rate"] * 2 / row["trips"]'
        )
    )
    with pytest.raises(TransformationsUnavailable, match="changed since `ladle apply`"):
        async for _ in serve(root):
            pass


async def test_failing_artifacts_stop_startup(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {"type": "sqlite", "path": "data/online.db"},
        artifacts="def load_artifacts(app):\n    raise OSError('model.bin missing')\n",
    )
    with pytest.raises(ArtifactsFailed, match=r"model\.bin missing"):
        async for _ in serve(root):
            pass
    port = free_port()
    ladle = Path(sys.executable).parent / "ladle"
    result = subprocess.run(
        [str(ladle), "serve", "--port", str(port)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "model.bin missing" in result.stdout + result.stderr


def test_apply_rejects_bad_on_demand_views(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        DEFS
        + """
@on_demand_feature_view(sources=[stats], schema=[Field(name="x", dtype=Float64)], mode="pandas")
def pandas_mode(df):
    return df


@on_demand_feature_view(sources=[stats], schema=[Field(name="rate", dtype=Float64)])
def shadowing(inputs):
    return inputs
""",
    )
    write_parquet(tmp_path / "data/stats.parquet", DATA)
    with pytest.raises(RepoError) as info:
        asyncio.run(apply_repo(load_repo_config(tmp_path)))
    message = str(info.value)
    assert "on-demand feature view 'pandas_mode' (features.py): mode 'pandas'" in message
    assert "on-demand feature view 'shadowing' (features.py): output 'rate'" in message
