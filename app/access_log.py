"""One structured (JSON) access-log line per HTTP request, on stdout.

Installed only when the access log is on (`ladle serve --no-access-log` turns it off), so
with it off requests take no extra step. With it on, the lines of one event-loop iteration
are written together, once the iteration's callbacks have run: one system call however
many requests finished, and no logging-module machinery per request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import BinaryIO

import orjson

from app.metrics import ASGIApp, Message, Receive, Scope, Send
from stores.timestamps import format_us


class LineWriter:
    """Buffers lines and writes them at the end of the current loop iteration."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.pending: list[bytes] = []

    def add(self, line: bytes) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(line)

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        try:
            self.stream.write(b"".join(lines))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stdout must not fail requests


def with_access_log(app: ASGIApp, stream: BinaryIO | None = None) -> ASGIApp:
    writer = LineWriter(stream or sys.stdout.buffer)

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
            now_us = time.time_ns() // 1000
            client = scope.get("client")
            line = {
                "time": format_us(now_us - now_us % 1000),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "bytes": sent,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            writer.add(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    return logged
