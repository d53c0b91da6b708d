"""Request limits from ``feature_server.limits``, checked before any real work."""

from __future__ import annotations

import asyncio
from itertools import accumulate

from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from app.deadlines import Deadlines
from app.errors import ApiError
from registry.config import LimitsConfig


async def read_body(request: Request, limits: LimitsConfig, deadlines: Deadlines) -> bytes:
    """:func:`receive_body` for a starlette endpoint."""
    return await receive_body(request.scope, request.receive, limits, deadlines)


async def receive_body(
    scope: Scope, receive: Receive, limits: LimitsConfig, deadlines: Deadlines
) -> bytes:
    """The body, refused with 413 as soon as it is longer than the limit, and with 408 when
    the client takes longer than ``body_timeout_seconds`` to send it (a slow client must not
    hold a worker's request slot for ever)."""
    task = deadlines.start(limits.body_timeout_seconds)
    try:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # the usual case: all of it at once
            if len(body) > limits.max_body_bytes:
                raise _too_large(limits)
        else:
            body = await _rest_of_body(scope, receive, limits, message)
    except asyncio.CancelledError:
        if deadlines.expired(task):
            raise ApiError(
                408,
                "body_timeout",
                ["body"],
                f"the request body did not arrive within {limits.body_timeout_seconds:g} s "
                "(feature_server.limits.body_timeout_seconds)",
            ) from None
        raise
    finally:
        deadlines.finish(task)
    if too_deep(body, limits.max_nesting_depth):
        raise ApiError(
            422,
            "too_deep",
            ["body"],
            f"the JSON body nests arrays and objects more than {limits.max_nesting_depth} "
            "levels deep (feature_server.limits.max_nesting_depth)",
        )
    return body


async def _rest_of_body(
    scope: Scope, receive: Receive, limits: LimitsConfig, message: Message
) -> bytes:
    """A body that comes in more than one message (or not at all: a disconnect)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limits.max_body_bytes:
                raise _too_large(limits)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            # Nobody is left to answer; a 4xx keeps it out of the server-error log and counts.
            raise ApiError(400, "client_disconnected", ["body"], "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise _too_large(limits)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
#: Openers to +1 and closers to -1 (as signed bytes), so depth is a running sum.
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def nesting_depth(body: bytes) -> int:
    """How deeply a JSON body nests arrays and objects (the top level is 1).

    Brackets inside strings do not count: escaped backslashes and quotes are dropped,
    then every other quote-separated piece is outside a string. Exact for valid JSON; for
    invalid JSON an estimate, and the decoder then reports the real problem.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = memoryview(outside.translate(_STEPS, _NOT_BRACKETS)).cast("b")
    return max(accumulate(steps), default=0)


def too_deep(body: bytes, limit: int) -> bool:
    """A body with no more ``[`` and ``{`` bytes than ``limit`` cannot nest deeper, so
    the usual request costs two ``bytes.count`` calls and is not scanned."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return nesting_depth(body) > limit


def _too_large(limits: LimitsConfig) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        ["body"],
        f"the request body is larger than {limits.max_body_bytes} bytes "
        "(feature_server.limits.max_body_bytes)",
    )


def check_count(count: int, limit: int, loc: list[str | int], what: str, setting: str) -> None:
    if count > limit:
        raise ApiError(
            422,
            "too_many",
            loc,
            f"{count} {what} is more than the limit of {limit} (feature_server.limits.{setting})",
        )
