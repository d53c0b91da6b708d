"""The worker processes of `ladle serve`: start them, replace any that dies, drain on SIGTERM.

hypercorn's own multi-worker runner stops every worker as soon as one exits with an error,
so a single killed worker would take the whole server down. This supervisor keeps the
survivors serving and starts a replacement (with a growing delay if replacements keep
failing to start). At startup it is strict instead: if a worker cannot start, the server
stops with that worker's exit code, so a bad deployment fails fast.

On SIGTERM or SIGINT it stops accepting connections, lets in-flight requests finish within
the graceful timeout, lets each worker's lifespan flush offline batches and close its
pools, and only then exits. Workers ignore SIGTERM and SIGINT themselves, so a signal sent
to the whole process group still drains; they also stop when the supervisor disappears.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

from app import lifecycle

log = logging.getLogger("ladle.server")

#: After the graceful timeout, how long a worker's lifespan may take to shut down.
SHUTDOWN_MARGIN_SECONDS = 30.0
#: The longest wait before starting a replacement for a worker that keeps failing.
MAX_RESTART_DELAY_SECONDS = 30.0


def _worker_main(config: Any, sockets: Any, shutdown_event: Event, ready: Event) -> None:
    """Entry point of a worker process (spawned, so it imports everything afresh)."""
    from hypercorn.asyncio.run import uvloop_worker

    lifecycle.use_ready_signal(ready)
    threading.Thread(
        target=_stop_when_orphaned, args=(shutdown_event,), name="orphan-watch", daemon=True
    ).start()
    uvloop_worker(config, sockets, shutdown_event)


def _stop_when_orphaned(shutdown_event: Event) -> None:
    """A worker whose supervisor was killed drains and exits instead of living on."""
    parent = os.getppid()
    while not shutdown_event.wait(1.0):
        if os.getppid() != parent:
            shutdown_event.set()
            return


@dataclass
class _Worker:
    process: BaseProcess
    ready: Event
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(
        self,
        config: Any,
        workers: int,
        *,
        graceful_timeout: float,
        startup_timeout: float = 90.0,
        on_worker_exit: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self.config = config
        self.count = workers
        self.graceful_timeout = graceful_timeout
        self.startup_timeout = startup_timeout
        self.on_worker_exit = on_worker_exit
        self._ctx = get_context("spawn")
        self._shutdown = self._ctx.Event()
        self._stopping = False
        self._workers: list[_Worker] = []
        self._sockets: Any = None
        self._failures = 0  # replacements in a row that died before becoming ready
        self._restart_due: list[float] = []

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit code."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous = self._install_signals(wake_write)
        self._sockets = self.config.create_sockets()
        try:
            for _ in range(self.count):
                self._spawn()
            code = self._wait_until_started(wake_read)
            if code is None:
                log.info("all %d workers ready", self.count)
                self._watch(wake_read)
                code = 0
            return code
        finally:
            self._drain()
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(-1)
            os.close(wake_read)
            os.close(wake_write)

    def _install_signals(self, wake_fd: int) -> dict[int, Any]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        previous: dict[int, Any] = {}
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, stop)
        signal.set_wakeup_fd(wake_fd, warn_on_full_buffer=False)
        return previous

    def _spawn(self) -> None:
        ready = self._ctx.Event()
        process = self._ctx.Process(
            target=_worker_main,
            kwargs={
                "config": self.config,
                "sockets": self._sockets,
                "shutdown_event": self._shutdown,
                "ready": ready,
            },
            daemon=True,
        )
        # The child inherits ignored signals across exec: only the supervisor reacts to them.
        handlers = {n: signal.signal(n, signal.SIG_IGN) for n in (signal.SIGTERM, signal.SIGINT)}
        try:
            process.start()
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
        self._workers.append(_Worker(process, ready))

    def _wait_until_started(self, wake_fd: int) -> int | None:
        """None once every worker is ready; else the exit code to stop with."""
        deadline = time.monotonic() + self.startup_timeout
        while not all(w.ready.is_set() for w in self._workers):
            if self._stopping:
                return 0
            for worker in self._workers:
                code = worker.process.exitcode
                if code is not None:
                    log.error("worker %s failed to start (exit code %s)", worker.process.pid, code)
                    return code if code > 0 else 1
            if time.monotonic() > deadline:
                log.error("workers not ready after %.0f s; stopping", self.startup_timeout)
                return 1
            sentinels = [w.process.sentinel for w in self._workers]
            wait([wake_fd, *sentinels], timeout=0.05)
            _empty_pipe(wake_fd)
        return None

    def _watch(self, wake_fd: int) -> None:
        while not self._stopping:
            timeout = None
            if self._restart_due:
                timeout = max(0.0, min(self._restart_due) - time.monotonic())
            elif any(not w.ready.is_set() for w in self._workers):
                timeout = 0.2  # notice when a replacement becomes ready
            wait([wake_fd, *(w.process.sentinel for w in self._workers)], timeout=timeout)
            _empty_pipe(wake_fd)
            if self._stopping:
                return
            self._reap()
            self._note_ready()
            now = time.monotonic()
            for due in [d for d in self._restart_due if d <= now]:
                self._restart_due.remove(due)
                self._spawn()

    def _reap(self) -> None:
        for worker in list(self._workers):
            code = worker.process.exitcode
            if code is None:
                continue
            worker.process.join()
            self._workers.remove(worker)
            pid = worker.process.pid or 0
            self.on_worker_exit(pid)
            if code == 0:
                log.info("worker %s exited (max requests reached); starting a new one", pid)
                self._restart_due.append(time.monotonic())
                continue
            if not worker.ready.is_set():
                self._failures += 1
            delay = min(MAX_RESTART_DELAY_SECONDS, 0.5 * (2**self._failures - 1))
            log.warning(
                "worker %s died (exit code %s); starting a replacement in %.1f s", pid, code, delay
            )
            self._restart_due.append(time.monotonic() + delay)

    def _note_ready(self) -> None:
        """Once every worker is up again, the next death starts its delay afresh."""
        complete = len(self._workers) == self.count and not self._restart_due
        if self._failures and complete and all(w.ready.is_set() for w in self._workers):
            self._failures = 0

    def _drain(self) -> None:
        """Stop accepting, let workers finish and shut down, then release the sockets."""
        self._shutdown.set()
        if self._sockets is not None:
            # The workers hold their own copies; closing ours lets the listening socket
            # close as soon as they stop accepting, so new connections are refused.
            for sock in [*self._sockets.secure_sockets, *self._sockets.insecure_sockets]:
                sock.close()
        deadline = time.monotonic() + self.graceful_timeout + SHUTDOWN_MARGIN_SECONDS
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.exitcode is None:
                log.error("worker %s did not stop in time; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join(5)
            self.on_worker_exit(worker.process.pid or 0)
        self._workers.clear()


def _empty_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
