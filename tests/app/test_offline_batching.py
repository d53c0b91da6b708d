"""Offline push batching: 202, flush on size, on interval, and on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import httpx

from tests.app.conftest import serve
from tests.support import apply_now, free_port, wait_for_port, write_parquet, write_repo

DEFS = """
from registry import Entity, FeatureView, Field, FileSource, Int64, PushSource, ValueType
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(path="data/trips.parquet", timestamp_field="ts")
trips = FeatureView(name="trips", entities=[driver], schema=[Field(name="count", dtype=Int64)],
                    source=PushSource(name="trips_push", batch_source=source))
"""


def make_repo(
    root: Path, batch_size: int, interval: float, online_store: dict[str, object] | None = None
) -> Path:
    write_repo(
        root,
        DEFS,
        online_store=online_store,
        extra_config={
            "feature_server": {
                "offline_push_batching_enabled": True,
                "offline_push_batching_batch_size": batch_size,
                "offline_push_batching_batch_interval_seconds": interval,
            }
        },
    )
    write_parquet(
        root / "data/trips.parquet",
        "SELECT 1::BIGINT AS driver_id, 0::BIGINT AS count, TIMESTAMP '2026-01-01' AS ts",
    )
    apply_now(root)
    return root


def push(ids: list[int], to: str = "offline") -> dict[str, Any]:
    return {
        "push_source_name": "trips_push",
        "to": to,
        "df": {
            "driver_id": ids,
            "count": [i * 10 for i in ids],
            "ts": ["2026-02-01T00:00:00Z"] * len(ids),
        },
    }


def offline_rows(root: Path) -> list[tuple[Any, ...]]:
    files = [
        str(root / "data/trips.parquet"),
        *map(str, (root / "data/trips.parquet.d").glob("*.parquet")),
    ]
    return duckdb.sql(f"SELECT driver_id, count FROM read_parquet({files}) ORDER BY 1").fetchall()


async def test_batches_flush_on_size_and_interval(
    tmp_path: Path, online_store_config: dict[str, object]
) -> None:
    root = make_repo(tmp_path, batch_size=3, interval=0.2, online_store=online_store_config)
    async for client in serve(root):
        response = await client.post("/push", json=push([2, 3]))
        assert response.status_code == 202
        assert offline_rows(root) == [(1, 0)]  # buffered, not written yet
        assert (await client.post("/push", json=push([4, 5]))).status_code == 202
        assert offline_rows(root) == [(1, 0), (2, 20), (3, 30), (4, 40), (5, 50)]
        assert (await client.post("/push", json=push([6], "online_and_offline"))).status_code == 202
        await asyncio.sleep(0.5)  # the interval flushes the last row
        assert offline_rows(root)[-1] == (6, 60)
        body = (
            await client.post(
                "/get-online-features",
                json={"entities": {"driver_id": [6]}, "features": ["trips:count"]},
            )
        ).json()
        assert body["results"][1]["values"] == [60]


def test_sigterm_flushes_acknowledged_rows(tmp_path: Path) -> None:
    root = make_repo(tmp_path, batch_size=10_000, interval=3600)
    port = free_port()
    ladle = Path(sys.executable).parent / "ladle"
    process = subprocess.Popen(
        [str(ladle), "serve", "--port", str(port), "--no-access-log"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30)
        acknowledged = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for start in range(100, 150, 5):
                ids = list(range(start, start + 5))
                assert client.post("/push", json=push(ids)).status_code == 202
                acknowledged += ids
        assert offline_rows(root) == [(1, 0)]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert [row[0] for row in offline_rows(root)] == [1, *acknowledged]
