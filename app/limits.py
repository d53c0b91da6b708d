"""Request limits from ``feature_server.limits``, checked before any real work."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from app.errors import ApiError
from registry.config import LimitsConfig


async def read_body(request: Request, limits: LimitsConfig) -> bytes:
    """The body, refused with 413 as soon as it is longer than the limit, and with 408 when
    the client takes longer than ``body_timeout_seconds`` to send it (a slow client must not
    hold a worker's request slot for ever)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _too_large(limits)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _too_large(limits)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "body_timeout",
            ["body"],
            f"the request body did not arrive within {limits.body_timeout_seconds:g} s "
            "(feature_server.limits.body_timeout_seconds)",
        ) from None
    return b"".join(chunks)


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
