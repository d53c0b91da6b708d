"""The worker processes of `ladle serve`: start them, replace any that dies, drain on SIGTERM.

hypercorn's own multi-worker runner stops every worker as soon as one exits with an error,
so a single killed worker would take the whole server down (and its workers share one
shutdown Event, whose lock a killed worker can die holding, freezing the others). This
supervisor gives each worker pipes of its own, keeps the survivors serving and starts a
replacement (with a growing delay if replacements keep failing to start). At startup it is
strict instead: if a worker cannot start, the server stops with that worker's exit code,
so a bad deployment fails fast.

On SIGTERM or SIGINT it stops accepting connections, lets in-flight requests finish within
the graceful timeout, lets each worker's lifespan flush offline batches and close its
pools, and only then exits. Workers ignore SIGTERM and SIGINT themselves, so a signal sent
to the whole process group still drains; they also stop when the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from app import lifecycle
from app.logs import configure_logging

log = logging.getLogger("ladle.server")

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
#: After the graceful timeout, how long a worker's lifespan may take to shut down.
SHUTDOWN_MARGIN_SECONDS = 30.0
#: The longest wait before starting a replacement for a worker that keeps failing.
MAX_RESTART_DELAY_SECONDS = 30.0


class _ReadySignal:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def set(self) -> None:
        self.connection.send_bytes(b"ready")
        self.connection.close()


def _worker_main(config: Any, sockets: Any, control: Connection, ready: Connection) -> None:
    """Entry point of a worker process (spawned, so it imports everything afresh).

    Each worker has pipes of its own to the supervisor, not a shared lock that a killed
    worker could die holding: ``control`` ends (a byte, or EOF because the supervisor
    is gone) when the worker must stop; the worker reports readiness on ``ready``.
    """
    for number in _STOP_SIGNALS:  # the supervisor drains this worker through ``control``
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    import uvloop
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import load_application

    configure_logging(config.loglevel)
    lifecycle.use_ready_signal(_ReadySignal(ready))
    app = load_application(config.application_path, config.wsgi_max_body_size)

    async def stop_requested() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def readable() -> None:
            if not stop.done():
                stop.set_result(None)

        loop.add_reader(control.fileno(), readable)
        try:
            await stop
        finally:
            loop.remove_reader(control.fileno())

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.get_loop().set_exception_handler(_quiet_tls_handshake_failures)
        runner.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=stop_requested))


def _quiet_tls_handshake_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A client that fails the TLS handshake is not worth a traceback (as in hypercorn)."""
    if not isinstance(context.get("exception"), ssl.SSLError):
        loop.default_exception_handler(context)


@dataclass
class _Worker:
    process: BaseProcess
    control: Connection
    ready_pipe: Connection
    ready: bool = False

    def stop(self) -> None:
        """Ask the worker to drain; closing the pipe is the message."""
        self.control.close()


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
        control_reader, control_writer = self._ctx.Pipe(duplex=False)
        ready_reader, ready_writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main,
            kwargs={
                "config": self.config,
                "sockets": self._sockets,
                "control": control_reader,
                "ready": ready_writer,
            },
            daemon=True,
        )
        # Blocked, not ignored, while the child starts: the child inherits the mask (only
        # the supervisor reacts to these signals), and one that arrives meanwhile stays
        # pending here instead of being dropped.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        # The child has its own copies now; ours would keep the pipes from ever ending.
        control_reader.close()
        ready_writer.close()
        self._workers.append(_Worker(process, control_writer, ready_reader))

    def _waitables(self, wake_fd: int) -> list[Any]:
        pending = [w.ready_pipe for w in self._workers if not w.ready]
        return [wake_fd, *(w.process.sentinel for w in self._workers), *pending]

    def _note_ready(self) -> None:
        for worker in self._workers:
            if not worker.ready and worker.ready_pipe.poll():
                try:
                    worker.ready = worker.ready_pipe.recv_bytes() == b"ready"
                except (EOFError, OSError):
                    continue  # it died before it was ready; _reap deals with it
        # Once every worker is up again, the next death starts its delay afresh.
        complete = len(self._workers) == self.count and not self._restart_due
        if self._failures and complete and all(w.ready for w in self._workers):
            self._failures = 0

    def _wait_until_started(self, wake_fd: int) -> int | None:
        """None once every worker is ready; else the exit code to stop with."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._note_ready()
            if all(w.ready for w in self._workers):
                return None
            if self._stopping:
                return 0
            for worker in self._workers:
                code = worker.process.exitcode
                if code is not None and not worker.ready:
                    log.error("worker %s failed to start (exit code %s)", worker.process.pid, code)
                    return code if code > 0 else 1
            if time.monotonic() > deadline:
                log.error("workers not ready after %.0f s; stopping", self.startup_timeout)
                return 1
            wait(self._waitables(wake_fd), timeout=1.0)
            _empty_pipe(wake_fd)

    def _watch(self, wake_fd: int) -> None:
        while not self._stopping:
            timeout = None
            if self._restart_due:
                timeout = max(0.0, min(self._restart_due) - time.monotonic())
            wait(self._waitables(wake_fd), timeout=timeout)
            _empty_pipe(wake_fd)
            if self._stopping:
                return
            self._note_ready()
            self._reap()
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
            worker.control.close()
            worker.ready_pipe.close()
            pid = worker.process.pid or 0
            self.on_worker_exit(pid)
            if code == 0:
                log.info("worker %s exited (max requests reached); starting a new one", pid)
                self._restart_due.append(time.monotonic())
                continue
            if not worker.ready:
                self._failures += 1
            delay = min(MAX_RESTART_DELAY_SECONDS, 0.5 * (2**self._failures - 1))
            log.warning(
                "worker %s died (exit code %s); starting a replacement in %.1f s", pid, code, delay
            )
            self._restart_due.append(time.monotonic() + delay)

    def _drain(self) -> None:
        """Stop accepting, let workers finish and shut down, then release the sockets."""
        for worker in self._workers:
            worker.stop()
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
            worker.ready_pipe.close()
        self._workers.clear()


def _empty_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
