"""The app served in-process on an event loop of its own, for synchronous callers.

Hypothesis runs each example of a test synchronously; this lets a property test send
hundreds of requests to one started app (stores connected, registry loaded).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from app import create_app


class SyncApp:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._runner = asyncio.Runner()
        self._stack = AsyncExitStack()
        self._client: httpx.AsyncClient | None = None

    async def _start(self) -> None:
        app = create_app(self.root)
        await self._stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://ladle")
        )

    def __enter__(self) -> SyncApp:
        self._runner.run(self._start())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._runner.run(self._stack.aclose())
        finally:
            self._runner.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None
        return self._runner.run(self._client.request(method, url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
