"""A repo whose registry is in PostgreSQL, driven as a user would: ladle apply,
materialize and serve as processes, concurrent applies, HTTP materialization."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from registry.config import load_repo_config
from registry.factory import open_registry
from registry.model import RegistrySnapshot
from registry.sql_registry import SqlRegistry
from tests.app.conftest import build_repo, serve
from tests.app.test_cli import check_demo_response, server
from tests.support import PostgresServer, free_port, run_cli

PASSWORD = PostgresServer.PASSWORD


def sql_demo(tmp_path: Path, pg_url: str) -> Path:
    """`ladle init`'s demo repo, its registry in PostgreSQL; the password comes from an
    environment variable, as it should in production."""
    run_cli("init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    config = yaml.safe_load((demo / "feature_store.yaml").read_text())
    config["registry"] = {
        "registry_type": "sql",
        "path": pg_url.replace(PASSWORD, "${LADLE_TEST_PG_PASSWORD}"),
        "cache_ttl_seconds": 1,
    }
    (demo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    os.environ["LADLE_TEST_PG_PASSWORD"] = PASSWORD
    return demo


def load(settings_root: Path) -> RegistrySnapshot:
    async def read() -> RegistrySnapshot:
        registry = open_registry(load_repo_config(settings_root))
        try:
            return await registry.load()
        finally:
            await registry.close()

    return asyncio.run(read())


def test_apply_materialize_serve_with_a_sql_registry(tmp_path: Path, pg_url: str) -> None:
    demo = sql_demo(tmp_path, pg_url)
    try:
        applied = run_cli("apply", cwd=demo)
        assert "Created feature view driver_hourly_stats" in applied.stdout
        assert "Registry version 1 written to postgresql://ladle:***@127.0.0.1:" in applied.stdout
        again = run_cli("apply", cwd=demo)
        assert "No changes." in again.stdout and "Registry version 2" in again.stdout
        materialized = run_cli("materialize-incremental", "now", cwd=demo)
        assert "driver_hourly_stats:" in materialized.stdout
        snapshot = load(demo)
        assert snapshot.version == 3
        assert set(snapshot.materializations) == {
            "driver_hourly_stats",
            "driver_hourly_stats_fresh",
        }
        for result in (applied, again, materialized):
            assert PASSWORD not in result.stdout + result.stderr

        port = free_port()
        ladle = str(Path(sys.executable).parent / "ladle")
        checkout = str(Path(__file__).resolve().parents[2])
        with server(
            [ladle, "serve", "--port", str(port)], demo, port, {"PYTHONPATH": checkout}
        ) as process:
            check_demo_response(port)
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10)
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            assert ready.json()["registry"]["version"] == 3
        output = process.stdout.read() if process.stdout else ""
        assert "registry" in output or "serving" in output
        assert PASSWORD not in output
    finally:
        del os.environ["LADLE_TEST_PG_PASSWORD"]


def test_concurrent_applies_from_processes(tmp_path: Path, pg_url: str) -> None:
    demo = sql_demo(tmp_path, pg_url)
    try:
        checkout = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": checkout}
        ladle = str(Path(sys.executable).parent / "ladle")
        processes = [
            subprocess.Popen(
                [ladle, "apply"],
                cwd=demo,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
        versions = sorted(
            int(line.split()[2])
            for out, _ in outputs
            for line in out.splitlines()
            if line.startswith("Registry version")
        )
        assert versions == [1, 2, 3, 4]  # one each, none lost, none repeated
        # Exactly one apply created the objects; the others saw its result.
        assert sum("Created feature view driver_hourly_stats" in out for out, _ in outputs) == 1
        assert sum("No changes." in out for out, _ in outputs) == 3
        snapshot = load(demo)
        assert snapshot.version == 4
        assert "driver_hourly_stats" in snapshot.feature_views
    finally:
        del os.environ["LADLE_TEST_PG_PASSWORD"]


async def test_http_materialization_records_in_postgres_and_honours_its_locks(
    tmp_path: Path, pg_url: str
) -> None:
    root = await build_repo(
        tmp_path / "repo",
        {"type": "sqlite", "path": "data/online.db"},
        {"registry_type": "sql", "path": pg_url},
    )
    window = {
        "start_ts": "2000-01-01T00:00:00",
        "end_ts": "2030-01-01T00:00:00",
        "feature_views": ["driver_profile"],
    }
    async for client in serve(root):
        other_process = SqlRegistry(pg_url, "test_project")
        async with other_process.view_lock("driver_profile"):
            busy = await client.post("/materialize", json=window)
            assert busy.status_code == 409
            assert busy.json()["detail"][0]["type"] == "materialization_in_progress"
        done = await client.post("/materialize", json=window)
        assert done.status_code == 200, done.text
        snapshot = await other_process.load()
        assert snapshot.version == 3
        recorded = snapshot.materializations["driver_profile"]
        assert recorded.end_us == 1893456000 * 1_000_000
        await other_process.close()
