"""The file registry: one JSON file, replaced atomically on every write.

Readers tell whether it changed from ``os.stat`` alone (inode, size, mtime), so the
periodic refresh costs one system call until an apply or materialize happens. Writers
and materializations lock with ``flock`` on files beside the registry, which serializes
the processes of one machine.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from registry.backend import Change, RegistryError, ViewLocked
from registry.model import RegistrySnapshot, snapshot_decoder, snapshot_encoder

__all__ = ["FileRegistry", "RegistryError", "file_view_lock"]

#: How often a waiting async writer tries the lock again.
_LOCK_POLL_SECONDS = 0.01

Token = tuple[int, int, int]


class FileRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    async def token(self) -> Token:
        """Changes whenever the file is replaced; raises RegistryError if it is gone."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise RegistryError(f"registry {self.path}: {exc.strerror}") from None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _missing(self) -> RegistryError:
        return RegistryError(
            f"registry {self.path} does not exist; run `ladle apply` in the feature repo"
        )

    async def load(self) -> RegistrySnapshot:
        return self.read()

    def read(self) -> RegistrySnapshot:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise RegistryError(f"registry {self.path}: {exc.strerror}") from None
        try:
            return snapshot_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"registry {self.path} is corrupt: {exc}") from None

    def read_or_none(self) -> RegistrySnapshot | None:
        return self.read() if self.path.exists() else None

    def _lock_path(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path(), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update_sync(self, change: Change, *, replace_corrupt: bool = False) -> RegistrySnapshot:
        """:meth:`update` for callers without an event loop; blocks while another
        process holds the lock."""
        with self._locked():
            return self._change(change, replace_corrupt)

    async def update(self, change: Change, *, replace_corrupt: bool = False) -> RegistrySnapshot:
        """Read, change and replace the registry under a lock; bumps the version.

        ``change`` gets the current snapshot (None before the first apply, or when the
        file is corrupt and ``replace_corrupt`` is set, as ``ladle apply`` does).
        Concurrent updates from other processes wait for each other, so none is lost;
        the wait polls the lock, so a serving event loop keeps answering meanwhile.
        """
        with open(self._lock_path(), "w") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_LOCK_POLL_SECONDS)
            try:
                return self._change(change, replace_corrupt)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def view_lock(self, view: str, force: bool = False) -> AbstractAsyncContextManager[None]:
        return _async_file_view_lock(self.path.parent, view, force)

    async def close(self) -> None:
        """Nothing stays open between calls."""

    def _change(self, change: Change, replace_corrupt: bool) -> RegistrySnapshot:
        try:
            current = self.read_or_none()
        except RegistryError:
            if not replace_corrupt:
                raise
            current = None
        proposed = change(current)
        snapshot = msgspec.structs.replace(
            proposed,
            version=(current.version if current else 0) + 1,
            updated_at=datetime.now(UTC).isoformat(),
        )
        self._write_atomically(snapshot_encoder.encode(snapshot))
        return snapshot

    def _write_atomically(self, data: bytes) -> None:
        # Not mkstemp, whose files are 0600: servers often run as another user than
        # `ladle apply`. Like open(), a new file gets 0666 less the umask and a replaced
        # file keeps its mode.
        tmp = str(self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                with suppress(OSError):  # no file to replace yet
                    os.fchmod(out.fileno(), stat.S_IMODE(os.stat(self.path).st_mode))
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            _remove_quietly(tmp)
            raise


def _remove_quietly(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)


@contextmanager
def file_view_lock(folder: Path, view: str, force: bool = False) -> Iterator[None]:
    """Hold a view's materialization lock, shared by every process of the machine.

    Raises :class:`ViewLocked` if another run holds it, unless ``force``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".materialize-{view}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise ViewLocked(f"feature view {view!r} is already being materialized") from None
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@asynccontextmanager
async def _async_file_view_lock(folder: Path, view: str, force: bool) -> AsyncIterator[None]:
    with file_view_lock(folder, view, force):  # non-blocking: never waits for the lock
        yield
