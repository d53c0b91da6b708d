"""Keep a serving worker's registry current with an asyncio task.

Each tick asks the backend for a cheap change token; only a changed token loads the
snapshot, and only a changed snapshot replaces it. A failed check or load keeps the last
good snapshot serving and is logged once per distinct problem.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from registry.backend import RegistryBackend
from registry.model import RegistrySnapshot
from registry.periodic import Periodic

log = logging.getLogger("ladle.registry")


class RegistryRefresher:
    def __init__(
        self,
        backend: RegistryBackend,
        interval_seconds: float,
        on_change: Callable[[RegistrySnapshot], None],
    ) -> None:
        self.backend = backend
        self.interval = max(interval_seconds, 0.05)
        self.on_change = on_change
        self.snapshot: RegistrySnapshot | None = None
        #: The reason the last check failed, or None while the registry is healthy.
        self.problem: str | None = None
        #: time.monotonic() when the current problem began.
        self.problem_since: float | None = None
        self._token: object = None
        #: The change token of a snapshot that on_change refused (kept until the next one).
        self._refused: object = None
        self._timer = Periodic(self.interval, self.check)

    @property
    def problem_seconds(self) -> float | None:
        """How long the registry has been failing, while it is."""
        if self.problem_since is None:
            return None
        return time.monotonic() - self.problem_since

    async def load_initial(self) -> RegistrySnapshot:
        """Load once at startup; errors propagate so that startup fails fast."""
        self._token = await self.backend.token()
        snapshot = await self.backend.load()
        self._install(snapshot)
        return snapshot

    def _install(self, snapshot: RegistrySnapshot) -> None:
        """``on_change`` may refuse a snapshot by raising; the old one then stays."""
        self.on_change(snapshot)
        self.snapshot = snapshot

    async def check(self) -> bool:
        """One refresh step; returns True when a new version was installed."""
        token: object = None
        try:
            token = await self.backend.token()
            if token == self._token:
                self._recovered()
                return False
            if token == self._refused:
                return False  # refused already; it takes a new registry file to try again
            snapshot = await self.backend.load()
            # Not just the version: a registry deleted and applied again restarts at 1.
            changed = self.snapshot is None or snapshot != self.snapshot
            if changed:
                try:
                    self._install(snapshot)
                except Exception:
                    self._refused = token
                    raise
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self.problem:
                log.warning(
                    "registry refresh failed, serving version %s: %s",
                    self.snapshot.version if self.snapshot else None,
                    problem,
                )
            if self.problem is None:
                self.problem_since = time.monotonic()
            self.problem = problem
            return False
        self._token = token
        self._refused = None
        self._recovered()
        if changed:
            log.info(
                "registry version %s loaded from %s", snapshot.version, self.backend.describe()
            )
        return changed

    def _recovered(self) -> None:
        if self.problem is not None:
            log.info("registry %s is readable again", self.backend.describe())
            self.problem = None
            self.problem_since = None

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()
