"""What every registry backend (a file, or a PostgreSQL table) offers its callers.

Servers poll ``token()`` (cheap) and call ``load()`` only when it changed; ``ladle apply``
and materialization change the registry through ``update()``, which reads, changes and
writes under a lock so that concurrent writers never lose each other's changes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from registry.model import RegistrySnapshot


class RegistryError(Exception):
    """The registry is missing or cannot be read."""


class RegistryUnavailable(RegistryError):
    """The registry's store cannot be reached now; trying again later may work."""


class ViewLocked(Exception):
    """Another run holds a feature view's materialization lock."""


#: Gets the current snapshot (None before the first apply) and returns the new one; the
#: backend sets its version and time.
Change = Callable[[RegistrySnapshot | None], RegistrySnapshot]


class RegistryBackend(Protocol):
    def describe(self) -> str:
        """Where the registry lives, safe to log: never holds a password."""
        ...

    async def token(self) -> object:
        """A value that changes whenever the registry is written; cheap to get."""
        ...

    async def load(self) -> RegistrySnapshot: ...

    async def update(self, change: Change, *, replace_corrupt: bool = False) -> RegistrySnapshot:
        """Apply ``change`` atomically and bump the version by one.

        With ``replace_corrupt`` (as ``ladle apply`` does), an unreadable registry is
        passed to ``change`` as None instead of raising.
        """
        ...

    def view_lock(self, view: str, force: bool = False) -> AbstractAsyncContextManager[None]:
        """Hold a view's materialization lock; raise :class:`ViewLocked` if another run
        holds it, unless ``force``."""
        ...

    async def close(self) -> None: ...
