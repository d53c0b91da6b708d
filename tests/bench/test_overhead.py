"""bench/overhead.sh's helpers: the auth repo it generates, its metrics check, its table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import overhead_configs, overhead_report, suite_data, suite_spec
from bench.floor_app import create_floor_app
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us

IDS = [1, 7]


@pytest.fixture
async def repos(tmp_path: Path, redis_conn: str) -> tuple[Path, Path]:
    """The suite repo (a few entities), and its oidc copy as overhead.sh makes it."""
    repo = tmp_path / "repo"
    assert suite_data.main(["--repo", str(repo), "--redis", redis_conn, "--entities", "8"]) == 0
    settings = load_repo_config(repo)
    await apply_repo(settings)
    store = create_online_store(settings)
    await store.start()
    try:
        await materialize(
            FileRegistry(settings.registry_path), FileOfflineStore(repo), store, None, now_us(), 0
        )
    finally:
        await store.close()
    auth_repo = tmp_path / "repo-auth"
    shutil.copytree(repo, auth_repo)
    assert overhead_configs.main(["auth", str(auth_repo), str(tmp_path / "tokens")]) == 0
    await apply_repo(load_repo_config(auth_repo))
    return repo, auth_repo


@pytest.fixture
async def auth_client(repos: tuple[Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_floor_app(repos[1])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ladle") as client:
            yield client


def _token(tmp_path: Path, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(tmp_path / 'tokens' / name).read_text()}"}


BODY = {"entities": {suite_spec.JOIN_KEY: IDS}, "features": suite_spec.all_refs()}


async def test_the_token_reads_everything(auth_client: httpx.AsyncClient, tmp_path: Path) -> None:
    reply = await auth_client.post(
        "/get-online-features", json=BODY, headers=_token(tmp_path, "token")
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert results[0]["values"] == IDS
    assert len(results) == 1 + len(suite_spec.all_refs())
    assert all(column["statuses"] == ["PRESENT", "PRESENT"] for column in results[1:])


async def test_no_token_is_401_and_a_token_without_the_role_is_403(
    auth_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    reply = await auth_client.post("/get-online-features", json=BODY)
    assert reply.status_code == 401
    assert reply.json()["detail"][0]["type"] == "not_authenticated"
    headers = _token(tmp_path, "token_norole")
    reply = await auth_client.post("/get-online-features", json=BODY, headers=headers)
    assert reply.status_code == 403
    assert "bench-readers" in reply.json()["detail"][0]["msg"]


def test_an_auth_section_is_not_added_twice(tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text("project: p\nauth:\n  type: no_auth\n")
    with pytest.raises(SystemExit, match="already has an auth section"):
        overhead_configs.make_auth_repo(tmp_path, tmp_path / "tokens")


def test_steps_of_every_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead_configs.main(["steps", "baseline"]) == 0
    assert overhead_configs.main(["steps", "all"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["0 0 0", "1 1 1"]
    assert overhead_configs.main(["steps", "nope"]) == 2


def test_in_process_run_serves_every_config(repos: tuple[Path, Path], tmp_path: Path) -> None:
    """Each config's app answers 200s (the script exits non-zero otherwise), the access
    log is written only by the configs that have it, and metrics are counted."""
    out, log, metrics = tmp_path / "inproc.jsonl", tmp_path / "access.log", tmp_path / "m"
    command = [
        sys.executable, "-m", "bench.overhead_inproc", "--repo", str(repos[0]),
        "--auth-repo", str(repos[1]), "--token-file", str(tmp_path / "tokens" / "token"),
        "--metrics-dir", str(metrics), "--rows", "1 3", "--entities", "8", "--out", str(out),
        "--log", str(log), "--warmup", "2", "--requests", "3", "--blocks", "2",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LADLE_", "PROMETHEUS_"))}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["config"], r["rows"], len(r["cpu_us"])) for r in results] == [
        (name, rows, 2) for rows in (1, 3) for name in overhead_configs.CONFIGS
    ]
    # access_log and all: (2 warm-up + 2 blocks x 3) x 2 row counts, one line each
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 2 * 16 and {line["status"] for line in lines} == {200}
    # metrics and all count their requests; the others have no metrics at all
    assert overhead_configs.served_requests(metrics) == 2 * 16


COUNT = """
from app.metrics import Metrics, _families
from registry.config import MetricsConfig
assert Metrics(MetricsConfig(enabled=True)).request
_families().requests.labels("/get-online-features", "200").inc(3)
_families().requests.labels("/get-online-features", "401").inc()
"""


def test_metrics_check_counts_the_workers_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    assert overhead_configs.main(["metrics", str(folder)]) == 1  # nothing counted yet
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder))
    for _ in range(2):  # two "workers", each with its own files
        subprocess.run([sys.executable, "-c", COUNT], env=env, check=True, timeout=60)
    assert overhead_configs.served_requests(folder) == 6
    assert overhead_configs.main(["metrics", str(folder)]) == 0
    assert "6 /get-online-features 200s" in capsys.readouterr().out


def _run(config: str, round: int, rows: int, rps: float, server_cpu: float) -> dict[str, Any]:
    return {
        "config": config, "round": round, "rows": rows, "conns": 1, "rps": rps,
        "requests": int(rps * 10), "duration_s": 10.0, "bytes": 1000,
        "lat_ms": {"p50": 1.0 * round, "p99": 5.0},
        "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0},
        "cpu_pct": {"server": server_cpu, "redis": 5.0, "wrk": 8.0,
                    "host": server_cpu + 13.0 + (40.0 if round == 2 else 0.0)},
    }  # fmt: skip


def test_report_compares_with_the_baseline_of_the_same_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [
        _run("baseline", 1, 1, 1000.0, 80.0),  # 0.8 ms/request
        _run("metrics", 1, 1, 900.0, 81.0),  # 0.9 ms: +100 us, 0.90 of the baseline
        _run("baseline", 2, 1, 500.0, 50.0),  # a disturbed round: 1.0 ms/request
        _run("metrics", 2, 1, 400.0, 48.0),  # 1.2 ms: +200 us, 0.80
        _run("metrics", 1, 10, 300.0, 60.0),  # no baseline at 10 rows
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    out = tmp_path / "results.json"
    assert overhead_report.main([str(tmp_path), "--json", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith("| baseline | 1 | 1 | 750 | 1.50 | 5.00 | 0 | 1.00 | 0.900 |  |")
    assert table[3].startswith("| metrics | 1 | 1 | 650 | 1.50 | 5.00 | 0 | 0.85 | 1.050 | +150 |")
    assert "(noisy)" in table[3]  # round 2 had 40% other load
    assert table[4].startswith("| metrics | 10 | 1 | 300 |")
    assert "| n/a | 2.000 | n/a |" in table[4]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["config"], r["rows"], r["rounds"]) for r in rows] == [
        ("baseline", 1, 2),
        ("metrics", 1, 2),
        ("metrics", 10, 1),
    ]
    assert rows[1]["vs_baseline"] == pytest.approx(0.85)
    assert rows[1]["cpu_us_vs_baseline"] == pytest.approx(150.0)


def test_report_of_the_in_process_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results.jsonl").write_text(json.dumps(_run("baseline", 1, 1, 1000.0, 80.0)))
    blocks = [
        {"config": "baseline", "rows": 1, "cpu_us": [200.0, 150.0, 300.0]},
        {"config": "auth", "rows": 1, "cpu_us": [210.0, 175.0, 290.0]},  # +10, +25, -10
    ]
    (tmp_path / "results-inproc.jsonl").write_text("".join(json.dumps(b) + "\n" for b in blocks))
    assert overhead_report.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| baseline | 1 | 150.0 | 200.0 |  |  | 1.000 |" in out
    assert "| auth | 1 | 175.0 | 210.0 | +25.0 | +10.0 | 1.167 |" in out
