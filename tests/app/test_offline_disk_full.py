"""A push whose offline part cannot be written because the disk is full.

The server runs in its own process, serving the demo repo on the session's redis-server.
Its file size limit (RLIMIT_FSIZE, changed from outside with prlimit) stands in for a full
disk: a write past it fails with EFBIG, as a full disk fails with ENOSPC, and raising the
limit again is space coming back. The online store is Redis, which the limit does not
touch, so only the offline write fails.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
import redis
import yaml

from app.scaffold import init_repo
from tests.support import RedisServer, apply_now, free_port, wait_for_port

REDIS_DB = 5
#: Smaller than any Parquet file, so every offline write fails while it is in force.
FULL = 256

SERVER = """
import asyncio, sys
from hypercorn.asyncio import serve
from hypercorn.config import Config
from app import create_app

config = Config()
config.bind = [f"127.0.0.1:{sys.argv[2]}"]
asyncio.run(serve(create_app(sys.argv[1]), config))
"""


class Server:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        # Not a log file: the size limit would apply to it too.
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root), str(self.port)],
            cwd=Path(__file__).parents[2],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def disk_full(self, full: bool) -> None:
        limit = FULL if full else resource.RLIM_INFINITY
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(params=[False, True], ids=["direct", "batched"])
def server(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Server]:
    root = init_repo(tmp_path / "demo")
    config = yaml.safe_load((root / "feature_store.yaml").read_text())
    config["online_store"] = {
        "type": "redis",
        "connection_string": f"{redis_server.connection_string},db={REDIS_DB}",
    }
    if request.param:
        config["feature_server"] = {
            "offline_push_batching_enabled": True,
            "offline_push_batching_batch_size": 1,  # every push tries to write at once
            "offline_push_batching_batch_interval_seconds": 3600,
        }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    redis.Redis(port=redis_server.port, db=REDIS_DB).flushdb()
    apply_now(root)
    running = Server(root)
    running.batched = request.param  # type: ignore[attr-defined]
    running.pushed = root / "data/driver_stats.parquet.d"  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.disk_full(False)
        running.stop()


def push(server: Server, to: str, minutes_ago: int, rate: float) -> httpx.Response:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    df = {
        "driver_id": [1001],
        "event_timestamp": [when.isoformat()],
        "conv_rate": [rate],
        "acc_rate": [0.5],
        "avg_daily_trips": [7],
    }
    body = {"push_source_name": "driver_stats_push_source", "df": df, "to": to}
    return server.http.post("/push", json=body)


def online_rate(server: Server) -> float | None:
    body = {"entities": {"driver_id": [1001]}, "features": ["driver_hourly_stats_fresh:conv_rate"]}
    response = server.http.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    value = response.json()["results"][1]["values"][0]
    return None if value is None else round(value, 4)


def offline_rates(folder: Path) -> list[float]:
    """The conv_rates of the pushed files, and a check that nothing partial is left."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert all(n.startswith("part-") and n.endswith(".parquet") for n in names), names
    if not names:
        return []
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(
            f"SELECT conv_rate FROM read_parquet('{folder}/*.parquet') ORDER BY event_timestamp"
        ).fetchall()
    finally:
        con.close()
    return [round(r[0], 4) for r in rows]


def expect_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    (detail,) = response.json()["detail"]
    assert detail["type"] == "offline_store_full"
    assert "offline store" in detail["msg"] and "driver_stats_push_source" in detail["msg"]
    assert "nothing of this request was written" in detail["msg"]


@pytest.mark.parametrize("to", ["offline", "online_and_offline"])
def test_a_full_disk_fails_the_push_whole(server: Server, to: str) -> None:
    batched: bool = server.batched  # type: ignore[attr-defined]
    folder: Path = server.pushed  # type: ignore[attr-defined]
    ok = 202 if batched else 200
    online = to == "online_and_offline"
    server.disk_full(True)

    first = push(server, to, minutes_ago=30, rate=0.1)
    if batched:
        # Accepted into the buffer before the disk was known to be full; its write fails
        # and is kept for later.
        assert first.status_code == 202, first.text
        assert online_rate(server) == (0.1 if online else None)
        refused = push(server, to, minutes_ago=20, rate=0.2)
    else:
        refused = first
    expect_full(refused)
    # The refused request left nothing: not online, and no file, partial or whole.
    assert online_rate(server) == (0.1 if online and batched else None)
    assert offline_rates(folder) == []

    server.disk_full(False)  # space is back
    assert push(server, to, minutes_ago=10, rate=0.3).status_code == ok
    assert online_rate(server) == (0.3 if online else None)
    # Batched: the rows accepted before the disk filled are written too, the refused never.
    assert offline_rates(folder) == ([0.1, 0.3] if batched else [0.3])
