"""The per-worker cap on requests in flight, on a bare ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

from app.overload import limit_concurrency


async def test_past_the_cap_requests_are_refused_and_counted_and_probes_pass() -> None:
    release = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    refused: list[int] = []
    app = limit_concurrency(slow, 1, on_refused=lambda: refused.append(1))

    async def call(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "http", "path": path}, None, send)  # type: ignore[arg-type]
        return sent

    first = asyncio.create_task(call("/get-online-features"))
    await asyncio.sleep(0)
    second = await call("/get-online-features")
    assert second[0]["status"] == 503
    assert (b"retry-after", b"1") in second[0]["headers"]
    assert b'"type":"overloaded"' in second[1]["body"]
    assert refused == [1]
    probe = asyncio.create_task(call("/ready"))  # not counted, not refused: it waits too
    await asyncio.sleep(0)
    release.set()
    assert (await first)[0]["status"] == 200
    assert (await probe)[0]["status"] == 200
    assert (await call("/get-online-features"))[0]["status"] == 200  # the slot came back
