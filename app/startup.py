"""Starting a worker against services that may be a moment late, without waiting forever.

A registry or online store that cannot be reached is tried again for a bounded time
(``LADLE_STARTUP_RETRY_SECONDS``, default 10), then startup fails with the last error.
Mistakes that waiting cannot fix (a bad config, no registry applied yet, a refused
password) fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from registry.backend import RegistryUnavailable
from registry.config import ConfigError, RepoSettings
from registry.factory import open_registry
from stores.base import StoreUnavailable
from stores.factory import create_online_store

T = TypeVar("T")

STARTUP_RETRY_ENV = "LADLE_STARTUP_RETRY_SECONDS"
DEFAULT_STARTUP_RETRY_SECONDS = 10.0
#: The first pause between attempts; each later one doubles, up to the cap.
FIRST_PAUSE_SECONDS = 0.25
MAX_PAUSE_SECONDS = 2.0

log = logging.getLogger("ladle.startup")


def startup_retry_seconds() -> float:
    text = os.environ.get(STARTUP_RETRY_ENV, "").strip()
    if not text:
        return DEFAULT_STARTUP_RETRY_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"${STARTUP_RETRY_ENV}: {text!r} is not a number of seconds") from None
    if seconds < 0:
        raise ConfigError(f"${STARTUP_RETRY_ENV}: {text!r} must not be negative")
    return seconds


async def with_retries(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    retryable: tuple[type[Exception], ...],
    budget_seconds: float,
) -> T:
    """Run ``attempt`` until it succeeds, or fails with an error not in ``retryable``, or
    ``budget_seconds`` have passed; the last error is raised saying how long it tried."""
    deadline = time.monotonic() + budget_seconds
    pause = FIRST_PAUSE_SECONDS
    attempts = 0
    started = time.monotonic()
    while True:
        attempts += 1
        try:
            return await attempt()
        except retryable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if attempts == 1:
                    raise
                waited = time.monotonic() - started
                raise type(exc)(
                    f"{str(exc).rstrip('.')} (gave up after {attempts} attempts over {waited:.1f}s)"
                ) from None
            wait = min(pause, remaining)
            log.warning("%s failed, trying again in %.2fs: %s", what, wait, exc)
            await asyncio.sleep(wait)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)


def preflight(settings: RepoSettings) -> None:
    """For ``ladle serve``, before any worker starts: load the registry and reach the
    online store, with the startup retries. Raises RegistryError, StoreUnavailable or
    ConfigError with a message fit for the command line."""

    async def check() -> None:
        budget = startup_retry_seconds()
        registry = open_registry(settings)
        try:
            await with_retries(
                f"loading the registry from {registry.describe()}",
                registry.load,
                (RegistryUnavailable,),
                budget,
            )
        finally:
            await registry.close()
        store = create_online_store(settings)
        try:
            await with_retries("opening the online store", store.start, (StoreUnavailable,), budget)
        finally:
            await store.close()

    asyncio.run(check())
