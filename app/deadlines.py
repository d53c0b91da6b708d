"""Deadlines for many short waits, checked by one timer per event loop.

``asyncio.timeout`` schedules and cancels a timer for every wait: more than the usual
request-body read it would bound costs. Here a wait registers its task and deadline in a
dict; a timer that runs every ``RESOLUTION_SECONDS`` while anything is registered cancels
the tasks whose deadline has passed, so a deadline is kept to within that resolution.

    task = start(seconds)
    try:
        ...  # awaits
    except asyncio.CancelledError:
        if expired(task):
            ...  # the deadline passed: answer a timeout
        raise
    finally:
        finish(task)
"""

from __future__ import annotations

import asyncio
import weakref

RESOLUTION_SECONDS = 0.25


class _LoopDeadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self.timer: asyncio.TimerHandle | None = None

    def check(self) -> None:
        now = self.loop.time()
        for task, deadline in list(self.waiting.items()):
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        self.timer = self.loop.call_later(RESOLUTION_SECONDS, self.check) if self.waiting else None


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDeadlines] = (
    weakref.WeakKeyDictionary()
)


_last: _LoopDeadlines | None = None  # a worker has one loop: skip the weak dict


def _deadlines() -> _LoopDeadlines:
    global _last
    loop = asyncio.get_running_loop()
    if _last is not None and _last.loop is loop:
        return _last
    deadlines = _by_loop.get(loop)
    if deadlines is None:
        deadlines = _by_loop[loop] = _LoopDeadlines(loop)
    _last = deadlines
    return deadlines


def start(seconds: float) -> asyncio.Task[object]:
    """Bound the current task's wait to ``seconds`` from now; returns the task."""
    deadlines = _deadlines()
    task = asyncio.current_task(deadlines.loop)
    assert task is not None, "deadlines.start() needs a running task"
    deadlines.waiting[task] = deadlines.loop.time() + seconds
    if deadlines.timer is None:
        deadlines.timer = deadlines.loop.call_later(RESOLUTION_SECONDS, deadlines.check)
    return task


def expired(task: asyncio.Task[object]) -> bool:
    """For a CancelledError caught in a bounded wait: True if the deadline caused it
    (and nothing else cancelled the task too); the cancellation is then taken back."""
    deadlines = _deadlines()
    if task not in deadlines.expired:
        return False
    deadlines.expired.discard(task)
    return task.uncancel() == 0


def finish(task: asyncio.Task[object]) -> None:
    deadlines = _deadlines()
    deadlines.waiting.pop(task, None)
    deadlines.expired.discard(task)
