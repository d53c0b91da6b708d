"""How a worker process tells the `ladle serve` supervisor that it is ready to serve.

The supervisor hands each worker an event; the app's lifespan sets it once the registry is
loaded and the online store reached. Under another process manager (``hypercorn
app:main``) there is no event and :func:`signal_ready` does nothing.
"""

from __future__ import annotations

from typing import Protocol


class _Settable(Protocol):
    def set(self) -> None: ...


_ready: _Settable | None = None


def use_ready_signal(event: _Settable | None) -> None:
    global _ready
    _ready = event


def signal_ready() -> None:
    if _ready is not None:
        _ready.set()
