"""The CLI and the server, as separate processes: what a newcomer runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from registry.file_registry import file_view_lock as view_lock
from tests.support import RedisServer, free_port, run_cli, wait_for_port

REQUEST = {
    "entities": {"driver_id": [1001, 1005, 4242]},
    "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
}


@contextmanager
def server(
    args: list[str], cwd: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def check_demo_response(port: int) -> None:
    response = httpx.post(f"http://127.0.0.1:{port}/get-online-features", json=REQUEST, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metadata"]["feature_names"] == ["driver_id", "conv_rate", "avg_daily_trips"]
    assert body["results"][1]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert isinstance(body["results"][2]["values"][0], int)
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200


def test_init_apply_materialize_serve(tmp_path: Path) -> None:
    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    applied = run_cli("apply", cwd=demo)
    assert "Created feature view driver_hourly_stats" in applied.stdout
    assert "No changes." in run_cli("apply", cwd=demo).stdout
    materialized = run_cli("-c", str(demo), "materialize-incremental", "now", cwd=tmp_path)
    assert "driver_hourly_stats:" in materialized.stdout
    assert "100% 5/5" in materialized.stderr  # the progress bar
    port = free_port()
    ladle = str(Path(sys.executable).parent / "ladle")
    with server([ladle, "serve", "--port", str(port), "--no-access-log"], demo, port):
        check_demo_response(port)


def test_hypercorn_app_main_with_redis_and_two_workers(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        run_cli("init", "demo", cwd=tmp_path)
        demo = tmp_path / "demo"
        config = yaml.safe_load((demo / "feature_store.yaml").read_text())
        config["online_store"] = {"type": "redis", "connection_string": "${TEST_REDIS}"}
        (demo / "feature_store.yaml").write_text(yaml.safe_dump(config))
        env = {"TEST_REDIS": redis_server.connection_string}
        os.environ.update(env)
        try:
            run_cli("apply", cwd=demo)
            run_cli(
                "materialize",
                "2000-01-01T00:00:00",
                "now",
                "--views",
                "driver_hourly_stats",
                cwd=demo,
            )
        finally:
            del os.environ["TEST_REDIS"]
        port = free_port()
        hypercorn = Path(sys.executable).parent / "hypercorn"
        args = [
            str(hypercorn),
            "app:main",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "uvloop",
        ]
        with server(args, tmp_path, port, {**env, "LADLE_REPO": str(demo)}):
            for _ in range(4):  # several connections, so both workers answer
                check_demo_response(port)
    finally:
        redis_server.stop()


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    result = run_cli("apply", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "feature_store.yaml: file not found" in result.stderr

    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    result = run_cli("serve", "--port", str(free_port()), cwd=demo, check=False)
    assert result.returncode == 1
    assert "run `ladle apply`" in result.stderr

    run_cli("apply", cwd=demo)
    result = run_cli("materialize", "2026-01-02", "2026-01-01", cwd=demo, check=False)
    assert result.returncode == 1 and "after end" in result.stderr
    result = run_cli("materialize", "yesterday", "now", cwd=demo, check=False)
    assert result.returncode == 2 and "ISO 8601" in result.stderr
    result = run_cli("materialize-incremental", "now", "-v", "nope", cwd=demo, check=False)
    assert result.returncode == 1 and "unknown feature view" in result.stderr
    result = run_cli("init", "demo", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "not empty" in result.stderr
    with view_lock(demo / "data", "driver_hourly_stats"):  # as if a server were running it
        result = run_cli("materialize-incremental", "now", cwd=demo, check=False)
    assert result.returncode == 1 and "already being materialized" in result.stderr


def test_apply_drops_online_records_of_removed_views(tmp_path: Path) -> None:
    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    run_cli("apply", cwd=demo)
    run_cli("materialize-incremental", "now", cwd=demo)

    def views_stored() -> set[str]:
        with sqlite3.connect(demo / "data/online_store.db") as db:
            return {row[0] for row in db.execute("SELECT DISTINCT view FROM ladle_online")}

    assert views_stored() == {"driver_hourly_stats", "driver_hourly_stats_fresh"}
    source = (demo / "features.py").read_text()
    start = source.index("driver_hourly_stats_fresh = FeatureView(")
    end = source.index("# Values a request brings along")
    (demo / "features.py").write_text(source[:start] + source[end:])
    applied = run_cli("apply", cwd=demo)
    assert "Deleted feature view driver_hourly_stats_fresh" in applied.stdout
    assert views_stored() == {"driver_hourly_stats"}


def test_serve_takes_defaults_from_feature_server(tmp_path: Path) -> None:
    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    port = free_port()
    config = yaml.safe_load((demo / "feature_store.yaml").read_text())
    config["feature_server"] = {"port": port, "workers": 1}
    (demo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    run_cli("apply", cwd=demo)
    run_cli("materialize-incremental", "now", cwd=demo)
    ladle = str(Path(sys.executable).parent / "ladle")
    with server([ladle, "serve", "--no-access-log"], demo, port):
        check_demo_response(port)
