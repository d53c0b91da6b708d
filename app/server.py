"""Run the app under hypercorn's uvloop workers, managed by our own supervisor."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.logs import configure_logging
from app.metrics import METRICS_DIR_ENV, METRICS_ENABLED_ENV
from app.serve_options import ENVIRONMENT, ServeOptions, effective_workers
from app.startup import preflight
from app.state import REPO_ENV
from app.supervisor import Supervisor
from registry.config import load_repo_config


def hypercorn_config(options: ServeOptions) -> Any:
    from hypercorn.config import Config

    config = Config()
    config.application_path = "app:main"
    config.bind = [
        f"[{options.host}]:{options.port}"
        if ":" in options.host
        else f"{options.host}:{options.port}"
    ]
    config.workers = effective_workers(options.workers)
    config.worker_class = "uvloop"
    # hypercorn closes a keep-alive connection after 1000 requests by default; feature
    # clients hold connections open for hours, so let them.
    config.keep_alive_max_requests = 2**31
    # Also the deadline for a new connection to finish sending its request headers.
    config.keep_alive_timeout = options.keep_alive_timeout
    config.graceful_timeout = options.graceful_timeout
    config.max_requests = options.max_requests
    config.max_requests_jitter = options.max_requests_jitter
    config.keyfile = options.key
    config.certfile = options.cert
    config.accesslog = None  # the app writes its own structured access log
    config.errorlog = "-"
    config.loglevel = options.log_level.upper()
    return config


def serve(repo: Path, options: ServeOptions) -> int:
    """Check the repo, then start the workers; returns the exit code."""
    settings = load_repo_config(repo)
    preflight(settings)  # fail fast, before any worker starts
    configure_logging(options.log_level)
    # Workers read these: the command line's choices reach them like any other setting.
    os.environ[REPO_ENV] = str(settings.root)
    for name in ("registry_ttl_sec", "worker_connections", "access_log", "log_level"):
        value = getattr(options, name)
        if value is not None:
            os.environ[ENVIRONMENT[name][0]] = str(value).lower()

    metrics_dir = tempfile.mkdtemp(prefix="ladle-metrics-") if options.metrics else None
    try:
        return _run(settings.root, options, metrics_dir)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(root: Path, options: ServeOptions, metrics_dir: str | None) -> int:
    config = hypercorn_config(options)
    metrics_at = (
        _serve_metrics(options.host, options.metrics_port, metrics_dir) if metrics_dir else ""
    )
    scheme = "https" if options.cert else "http"
    workers = effective_workers(options.workers)
    print(
        f"ladle: serving {root} on {scheme}://{config.bind[0]} "
        f"with {workers} worker(s)" + (f"; metrics on {metrics_at}" if metrics_at else ""),
        flush=True,
    )
    supervisor = Supervisor(
        config,
        workers,
        graceful_timeout=options.graceful_timeout,
        on_worker_exit=_forget_metrics_of,
    )
    return supervisor.run()


def _serve_metrics(host: str, port: int, folder: str) -> str:
    """Aggregate the workers' metric files and serve them from this (parent) process."""
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
