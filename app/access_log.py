"""One structured (JSON) access-log line per HTTP request, on the ``ladle.access`` logger.

Installed only when the access log is on (`ladle serve --no-access-log` turns it off), so
with it off requests take no extra step.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from app.logs import access_logger
from app.metrics import ASGIApp, Message, Receive, Scope, Send


def with_access_log(app: ASGIApp) -> ASGIApp:
    logger = access_logger()

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0

        async def capture(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            client = scope.get("client")
            line = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "bytes": sent,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            logger.info(orjson.dumps(line).decode())

    return logged
