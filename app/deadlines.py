"""Deadlines for many short waits, checked by one timer per event loop.

``asyncio.timeout`` schedules and cancels a timer for every wait: more than the usual
request-body read it would bound costs. Here a wait registers its task and deadline in a
dict; a timer that runs every ``RESOLUTION_SECONDS`` while anything is registered cancels
the tasks whose deadline has passed, so a deadline is kept to within that resolution.

    task = deadlines.start(seconds)
    try:
        ...  # awaits
    except asyncio.CancelledError:
        if deadlines.expired(task):
            ...  # the deadline passed: answer a timeout
        raise
    finally:
        deadlines.finish(task)
"""

from __future__ import annotations

import asyncio

RESOLUTION_SECONDS = 0.25


class Deadlines:
    """The bounded waits of one event loop (made on it, used only from it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: float) -> asyncio.Task[object]:
        """Bound the current task's wait to ``seconds`` from now; returns the task."""
        task = asyncio.current_task(self.loop)
        assert task is not None, "Deadlines.start() needs a running task"
        self._waiting[task] = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_later(RESOLUTION_SECONDS, self._check)
        return task

    def expired(self, task: asyncio.Task[object]) -> bool:
        """For a CancelledError caught in a bounded wait: True if the deadline caused it
        (and nothing else cancelled the task too); the cancellation is then taken back."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def finish(self, task: asyncio.Task[object]) -> None:
        self._waiting.pop(task, None)
        self._expired.discard(task)

    def _check(self) -> None:
        now = self.loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._timer = (
            self.loop.call_later(RESOLUTION_SECONDS, self._check) if self._waiting else None
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
