"""The batcher keeps acknowledged rows through failed writes, in order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from app.offline_batcher import OfflineBatcher
from registry.model import FileSourceSpec

SOURCE = FileSourceSpec(name="s", path="s.parquet", timestamp_field="ts")


async def test_rows_added_during_a_failed_write_are_kept() -> None:
    written: list[list[Any]] = []
    release = threading.Event()
    calls = 0

    def append(
        path: str,
        source: FileSourceSpec,
        types: dict[str, str],
        columns: dict[str, list[Any]],
        stamps: set[str],
    ) -> Path:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait(5)
            raise OSError("disk full")
        written.append(list(columns["id"]))
        return Path(path)

    batcher = OfflineBatcher(append, batch_size=1000, interval_seconds=3600)
    await batcher.add("p", SOURCE, {"id": "BIGINT"}, {"id": [1, 2]}, set())
    flushing = asyncio.create_task(batcher.flush())
    await asyncio.sleep(0.05)  # the first write is under way (and will fail)
    await batcher.add("p", SOURCE, {"id": "BIGINT"}, {"id": [3]}, set())
    release.set()
    await flushing
    assert batcher.buffered_rows == 3
    await batcher.stop()
    assert written == [[1, 2, 3]]
    assert batcher.buffered_rows == 0
