"""A coroutine run every few seconds by a task of its own, for background upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("ladle.background")


class Periodic:
    def __init__(self, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        self.interval = interval
        self.step = step
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except Exception:
                # One failed step must not end the upkeep (nor resurface at shutdown).
                log.exception("background step %s failed; trying again next time", self.step)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the task; a step in progress is interrupted."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
