"""Run the app under hypercorn, one uvloop event loop per worker process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.state import REGISTRY_TTL_ENV, REPO_ENV
from registry.config import load_repo_config
from registry.file_registry import FileRegistry


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 6566
    workers: int = 1
    registry_ttl_sec: float | None = None
    access_log: bool = True
    log_level: str = "info"


def effective_workers(requested: int) -> int:
    """-1 means 2 x cores + 1, the usual rule for I/O-bound workers."""
    return 2 * (os.cpu_count() or 1) + 1 if requested == -1 else max(requested, 1)


def serve(repo: Path, options: ServeOptions) -> int:
    """Check the repo, then hand over to hypercorn; returns its exit code."""
    from hypercorn.config import Config
    from hypercorn.run import run

    settings = load_repo_config(repo)
    FileRegistry(settings.registry_path).read()  # fail fast, before any worker starts
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
    failed_workers = _record_worker_failures()
    print(
        f"ladle: serving {settings.root} on http://{config.bind[0]} "
        f"with {config.workers} worker(s)",
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
        code = original(processes)
        if code:
            failures.append(code)
        return code

    hypercorn.run._join_exited = join_exited
    return failures
