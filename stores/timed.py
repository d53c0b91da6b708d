"""An online store wrapper that times reads and writes, installed only with metrics on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence

from stores.base import OnlineStore, ReadBatch, ReadResult, VectorWrite, WriteRow

Observe = Callable[[str, float], None]


class TimedStore(OnlineStore):
    def __init__(self, inner: OnlineStore, observe: Observe) -> None:
        self.inner = inner
        self.observe = observe

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        await self.inner.ping()

    async def read(self, batches: Sequence[ReadBatch]) -> ReadResult:
        started = time.perf_counter()
        try:
            return await self.inner.read(batches)
        finally:
            self.observe("read", time.perf_counter() - started)

    async def write(self, rows: Sequence[WriteRow]) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.write(rows)
        finally:
            self.observe("write", time.perf_counter() - started)

    async def delete_views(self, prefix: bytes, views: Sequence[str]) -> None:
        await self.inner.delete_views(prefix, views)

    def scan_keys(self, prefix: bytes, batch: int = 1000) -> AsyncIterator[list[bytes]]:
        return self.inner.scan_keys(prefix, batch)

    async def count_keys(self, prefix: bytes) -> int:
        return await self.inner.count_keys(prefix)

    async def write_vectors(self, writes: Sequence[VectorWrite]) -> list[bool]:
        return await self.inner.write_vectors(writes)
