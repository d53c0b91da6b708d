"""One timer per loop bounds many waits: late ones are cancelled and reported expired,
others are left alone, and a cancellation from elsewhere is not mistaken for a deadline."""

from __future__ import annotations

import asyncio

import pytest

from app import deadlines as deadlines_module
from app.deadlines import Deadlines


@pytest.fixture(autouse=True)
def fast_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines_module, "RESOLUTION_SECONDS", 0.01)


async def bounded_sleep(deadlines: Deadlines, bound: float, sleep: float) -> str:
    task = deadlines.start(bound)
    try:
        await asyncio.sleep(sleep)
        return "done"
    except asyncio.CancelledError:
        if deadlines.expired(task):
            return "timed out"
        raise
    finally:
        deadlines.finish(task)


async def test_late_waits_time_out_and_others_finish() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    results = await asyncio.gather(
        bounded_sleep(deadlines, 0.05, 0.5),
        bounded_sleep(deadlines, 1.0, 0.02),
        bounded_sleep(deadlines, 0.05, 0.5),
    )
    assert results == ["timed out", "done", "timed out"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.05)  # the timer stops once nothing is waiting
    assert deadlines._timer is None
    deadlines.close()


async def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    task = asyncio.ensure_future(bounded_sleep(deadlines, 10.0, 10.0))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()
