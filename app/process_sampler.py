"""Gauges that are sampled rather than counted: the worker's CPU and memory, and how
fresh each feature view's materialized data is. A task samples them every few seconds,
only while metrics are on, so requests never pay for them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from app.metrics import Metrics
from registry.model import RegistrySnapshot
from registry.periodic import Periodic
from stores.timestamps import now_us

SAMPLE_SECONDS = 5.0


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, in KiB


def _machine_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class ProcessSampler:
    def __init__(
        self,
        metrics: Metrics,
        project: str,
        snapshot: Callable[[], RegistrySnapshot | None],
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.project = project
        self.snapshot = snapshot
        self._machine = _machine_bytes()
        self._last = (time.monotonic(), _cpu_seconds())
        self._timer = Periodic(interval, self.sample)

    async def sample(self) -> None:
        now, cpu = time.monotonic(), _cpu_seconds()
        wall = now - self._last[0]
        cpu_percent = 100.0 * (cpu - self._last[1]) / wall if wall > 0 else 0.0
        self._last = (now, cpu)
        resident = _resident_bytes()
        memory_percent = 100.0 * resident / self._machine if self._machine else 0.0
        self.metrics.process(cpu_percent, resident, memory_percent)
        snapshot = self.snapshot()
        if snapshot is not None:
            ends = {view: spec.end_us for view, spec in snapshot.materializations.items()}
            self.metrics.freshness(self.project, ends, now_us())

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
