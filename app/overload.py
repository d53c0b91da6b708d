"""A cap on the requests one worker serves at once (`--worker-connections`).

Past the cap a request is answered at once with 503 and Retry-After instead of queueing
without bound behind the others, so an overloaded worker sheds load and its latency stays
bounded. Health and readiness probes are not counted and never refused: an overloaded
worker is still alive.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import ApiError
from app.metrics import ASGIApp, Receive, Scope, Send

PROBE_PATHS = frozenset({"/health", "/ready"})
RETRY_AFTER_SECONDS = 1


def limit_concurrency(
    app: ASGIApp, limit: int, on_refused: Callable[[], None] | None = None
) -> ASGIApp:
    in_flight = 0
    body = ApiError(
        503,
        "overloaded",
        [],
        f"this worker is serving its limit of {limit} concurrent requests; retry shortly",
    ).body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ]

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal in_flight
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await app(scope, receive, send)
            return
        if in_flight >= limit:
            if on_refused is not None:
                on_refused()
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        in_flight += 1
        try:
            await app(scope, receive, send)
        finally:
            in_flight -= 1

    return limited
