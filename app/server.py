"""Run the app under hypercorn, one uvloop event loop per worker process."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.metrics import METRICS_DIR_ENV, METRICS_ENABLED_ENV
from app.startup import preflight
from app.state import REGISTRY_TTL_ENV, REPO_ENV
from registry.config import load_repo_config


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 6566
    workers: int = 1
    registry_ttl_sec: float | None = None
    access_log: bool = True
    log_level: str = "info"
    #: Serve Prometheus metrics on their own port (also on when the repo enables them).
    metrics: bool = False
    metrics_port: int = 8000


def effective_workers(requested: int) -> int:
    """-1 means 2 x cores + 1, the usual rule for I/O-bound workers."""
    return 2 * (os.cpu_count() or 1) + 1 if requested == -1 else max(requested, 1)


def serve(repo: Path, options: ServeOptions) -> int:
    """Check the repo, then hand over to hypercorn; returns its exit code."""
    from hypercorn.config import Config
    from hypercorn.run import run

    settings = load_repo_config(repo)
    preflight(settings)  # fail fast, before any worker starts
    os.environ[REPO_ENV] = str(settings.root)
    if options.registry_ttl_sec is not None:
        os.environ[REGISTRY_TTL_ENV] = str(options.registry_ttl_sec)

    config = Config()
    config.application_path = "app:main"
    config.bind = [
        f"[{options.host}]:{options.port}"
        if ":" in options.host
        else f"{options.host}:{options.port}"
    ]
    config.workers = effective_workers(options.workers)
    config.worker_class = "uvloop"
    # Hypercorn closes a keep-alive connection after 1000 requests by default; feature
    # clients hold connections open for hours, so let them.
    config.keep_alive_max_requests = 2**31
    config.accesslog = "-" if options.access_log else None
    config.errorlog = "-"
    config.loglevel = options.log_level.upper()
    metrics_at = ""
    if options.metrics or settings.config.feature_server.metrics.enabled:
        metrics_at = _serve_metrics(options.host, options.metrics_port)
    failed_workers = _record_worker_failures()
    print(
        f"ladle: serving {settings.root} on http://{config.bind[0]} "
        f"with {config.workers} worker(s)" + (f"; metrics on {metrics_at}" if metrics_at else ""),
        flush=True,
    )
    code = run(config)
    return code or (failed_workers[0] if failed_workers else 0)


def _record_worker_failures() -> list[int]:
    """Collect the exit codes of workers that died, e.g. because startup failed.

    hypercorn.run.run() reads the workers' exit codes once, then again after removing the
    exited workers, and so returns 0 even when a worker failed to start. Wrapping its
    helper keeps the real codes, so `ladle serve` exits non-zero when startup fails.
    """
    import hypercorn.run

    failures: list[int] = []
    original = hypercorn.run._join_exited

    def join_exited(processes: list[Any]) -> int:
        for process in processes:
            if process.exitcode is not None and process.pid is not None:
                _forget_metrics_of(process.pid)
        code = original(processes)
        if code:
            failures.append(code)
        return code

    hypercorn.run._join_exited = join_exited
    return failures


def _serve_metrics(host: str, port: int) -> str:
    """Aggregate the workers' metric files and serve them from this (parent) process."""
    folder = tempfile.mkdtemp(prefix="ladle-metrics-")
    os.environ[METRICS_DIR_ENV] = folder  # the workers inherit it, and so write there
    os.environ[METRICS_ENABLED_ENV] = "1"
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{where}/metrics"


def _forget_metrics_of(pid: int) -> None:
    """A dead worker's live gauges must not be summed any more."""
    if os.environ.get(METRICS_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
