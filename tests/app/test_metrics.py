"""Prometheus metrics: summed across workers on their own port, and per category."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
from prometheus_client import REGISTRY

from tests.app.conftest import serve
from tests.app.test_cli import server
from tests.app.test_on_demand import make_repo
from tests.support import free_port, run_cli


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_from_two_workers_add_up(tmp_path: Path) -> None:
    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    run_cli("apply", cwd=demo)
    run_cli("materialize-incremental", "now", cwd=demo)
    port, metrics_port = free_port(), free_port()
    ladle = str(Path(sys.executable).parent / "ladle")
    args = [
        ladle,
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
        "--metrics",
        "--metrics-port",
        str(metrics_port),
    ]
    body = {"entities": {"driver_id": [1001, 1002]}, "features": ["driver_hourly_stats:conv_rate"]}
    with server(args, demo, port) as process:
        for _ in range(30):  # a new connection each time, so both workers answer
            response = httpx.post(
                f"http://127.0.0.1:{port}/get-online-features",
                json=body,
                headers={"connection": "close"},
            )
            assert response.status_code == 200
        for _ in range(3):
            bad = httpx.post(
                f"http://127.0.0.1:{port}/get-online-features",
                json={"entities": {}},
                headers={"connection": "close"},
            )
            assert bad.status_code == 422
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert process.poll() is None
    assert (
        sample(
            text,
            "feast_feature_server_request_total",
            endpoint="/get-online-features",
            status="200",
        )
        == 30
    )
    assert (
        sample(
            text,
            "feast_feature_server_request_total",
            endpoint="/get-online-features",
            status="422",
        )
        == 3
    )
    assert sample(text, "feast_online_features_request_total") == 30
    assert sample(text, "feast_online_features_entity_count_sum") == 60
    assert sample(text, "ladle_online_feature_values_total", status="PRESENT") == 120
    assert (
        sample(
            text,
            "feast_feature_server_request_latency_seconds_count",
            endpoint="/get-online-features",
            feature_count="1",
            feature_view_count="1",
        )
        == 30
    )
    assert re.search(r'feast_feature_server_request_total\{endpoint="/health"', text) is None
    # Errors by type, store time, and the sampled gauges (one per live worker).
    assert sample(text, "ladle_errors_total", status="422", type="empty") == 3
    assert sample(text, "ladle_online_store_seconds_count", operation="read") == 30
    cpu = re.findall(r'^feast_feature_server_cpu_usage\{pid="\d+"\} (\S+)$', text, re.M)
    memory = re.findall(r'^ladle_process_resident_memory_bytes\{pid="\d+"\} (\S+)$', text, re.M)
    assert len(cpu) == 2 and len(memory) == 2
    assert all(20e6 < float(value) < 2e9 for value in memory)
    assert 0 < sample(text, "feast_feature_server_memory_usage", pid=_first_pid(text)) < 100
    freshness = sample(
        text, "feast_feature_freshness_seconds", feature_view="driver_hourly_stats", project="demo"
    )
    assert 0 <= freshness < 120  # materialized up to "now" a moment ago


def _first_pid(text: str) -> str:
    match = re.search(r'^feast_feature_server_memory_usage\{pid="(\d+)"\}', text, re.M)
    assert match, "no memory gauge"
    return match.group(1)


async def test_transformation_failures_are_counted(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"type": "sqlite", "path": "data/online.db"})
    config = (root / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(
        config + "feature_server:\n  metrics:\n    enabled: true\n"
    )

    def failures() -> float:
        value = REGISTRY.get_sample_value(
            "ladle_transformation_errors_total", {"feature_view": "broken"}
        )
        return value or 0.0

    before = failures()
    async for client in serve(root):
        response = await client.post(
            "/get-online-features",
            json={"entities": {"driver_id": [2]}, "features": ["broken:boom"]},
        )
        assert response.status_code == 500
    assert failures() == before + 1
