"""Batch offline pushes: buffer rows per batch source, write them as one file.

Rows are flushed when a source's buffer reaches ``batch_size`` rows, every
``interval_seconds``, and on shutdown (the server's lifespan end, which SIGTERM triggers),
so nothing acknowledged is lost by a graceful stop. A failed flush keeps its rows and is
tried again on the next tick; until one succeeds, :meth:`OfflineBatcher.failure` names
the error, so that new pushes to that source can be refused instead of piling up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from registry.model import FileSourceSpec
from registry.periodic import Periodic

log = logging.getLogger("ladle.offline")

#: (resolved path, source, column types, columns, timestamp columns) -> written file
Appender = Callable[[str, FileSourceSpec, dict[str, str], dict[str, list[Any]], set[str]], Path]


@dataclass
class _Pending:
    resolved: str
    source: FileSourceSpec
    types: dict[str, str]
    stamps: set[str] = field(default_factory=set)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    rows: int = 0

    def add(self, columns: dict[str, list[Any]], stamps: set[str], count: int) -> None:
        for name in set(self.columns) | set(columns):
            # A column missing on either side is filled with nulls for those rows.
            existing = self.columns.setdefault(name, [None] * self.rows)
            existing.extend(columns.get(name, [None] * count))
        self.stamps |= stamps
        self.rows += count


class OfflineBatcher:
    def __init__(self, append: Appender, batch_size: int, interval_seconds: float) -> None:
        self.append = append
        self.batch_size = max(batch_size, 1)
        self.interval = max(interval_seconds, 0.01)
        self._pending: dict[str, _Pending] = {}
        #: The error of each source's last flush, while it keeps failing.
        self._failures: dict[str, Exception] = {}
        self._lock = asyncio.Lock()
        self._timer = Periodic(self.interval, self.flush)

    @property
    def buffered_rows(self) -> int:
        return sum(p.rows for p in self._pending.values())

    def failure(self, resolved: str) -> Exception | None:
        """Why the last write of a source's rows failed, or None if it did not."""
        return self._failures.get(resolved)

    async def add(
        self,
        resolved: str,
        source: FileSourceSpec,
        types: dict[str, str],
        columns: dict[str, list[Any]],
        stamps: set[str],
    ) -> None:
        count = len(next(iter(columns.values())))
        pending = self._pending.get(resolved)
        if pending is None:
            pending = self._pending[resolved] = _Pending(resolved, source, types)
        pending.add(columns, stamps, count)
        if pending.rows >= self.batch_size:
            await self.flush(resolved)

    async def flush(self, resolved: str | None = None) -> None:
        """Write the buffered rows of one source (or all); keep them if the write fails.

        Never raises: rows already acknowledged stay buffered until a write succeeds.
        """
        async with self._lock:
            targets = [resolved] if resolved else list(self._pending)
            for path in targets:
                pending = self._pending.pop(path, None)
                if pending is None or pending.rows == 0:
                    continue
                try:
                    await anyio.to_thread.run_sync(
                        self.append,
                        pending.resolved,
                        pending.source,
                        pending.types,
                        pending.columns,
                        pending.stamps,
                    )
                except Exception as exc:
                    self._failures[path] = exc
                    log.warning(
                        "offline flush of %d rows to %s failed, will retry: %s",
                        pending.rows,
                        path,
                        exc,
                    )
                    # Keep these rows, ahead of any added while the write was running.
                    newer = self._pending.get(path)
                    if newer is not None:
                        pending.add(newer.columns, newer.stamps, newer.rows)
                    self._pending[path] = pending
                else:
                    self._failures.pop(path, None)

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        """Stop the timer and write everything still buffered."""
        await self._timer.stop()
        await self.flush()
        if self.buffered_rows:
            log.error("%d offline rows could not be written at shutdown", self.buffered_rows)
