"""GET /health (liveness, Feast's) and GET /ready (readiness, with a status body).

/ready says "not serving" (503) when no registry is loaded or the online store does not
answer: then no read can succeed, and a load balancer should send reads elsewhere. /health
is liveness: it fails only when the worker has no registry at all, because restarting a
worker cannot bring an online store back, and a liveness probe that failed on a Redis
outage would restart every pod at once. A registry that cannot be re-read (file corrupt or
deleted, PostgreSQL down) while the last good version keeps serving is *degraded*: both
answer 200 and say so in a JSON body. /health keeps Feast's empty body while all is well.
"""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.errors import ErrorBody, ErrorDetail
from app.state import ServingState
from stores.base import StoreUnavailable


class RegistryStatus(msgspec.Struct):
    #: The version being served; None before the first load.
    version: int | None
    #: Why the registry could not be checked or loaded lately; None while it can.
    problem: str | None = None
    #: Seconds since the problem began: how stale the served version may be.
    stale_seconds: float | None = None


class StoreStatus(msgspec.Struct):
    problem: str | None = None


class Status(msgspec.Struct):
    #: "ready", "degraded" (serving, but the registry cannot be refreshed) or "unavailable".
    status: str
    registry: RegistryStatus
    online_store: StoreStatus


_encoder = msgspec.json.Encoder()
PING_SECONDS = 0.5


async def _status(request: Request) -> Status:
    state: ServingState | None = getattr(request.app.state, "ladle", None)
    if state is None:
        return Status(
            "unavailable",
            RegistryStatus(None, "the server is starting"),
            StoreStatus("the server is starting"),
        )
    refresher = state.refresher
    stale = refresher.problem_seconds
    registry = RegistryStatus(
        version=state.snapshot.version if state.snapshot else None,
        problem=refresher.problem
        if state.snapshot
        else (refresher.problem or "the registry is not loaded"),
        stale_seconds=round(stale, 3) if stale is not None and state.snapshot else None,
    )
    store = StoreStatus()
    try:
        # Bounded well below a probe's timeout, so a partitioned store reads as "not
        # answering" rather than as a probe that timed out (a failed liveness check).
        await asyncio.wait_for(state.store.ping(), PING_SECONDS)
    except StoreUnavailable as exc:
        store.problem = str(exc)
    except TimeoutError:
        store.problem = f"the online store did not answer within {PING_SECONDS:g} s"
    if state.snapshot is None or store.problem is not None:
        status = "unavailable"
    else:
        status = "degraded" if registry.problem else "ready"
    return Status(status, registry, store)


def _json(body: object, status_code: int) -> Response:
    return Response(_encoder.encode(body), status_code, media_type="application/json")


async def ready(request: Request) -> Response:
    """200 while reads can be answered (ready or degraded), 503 otherwise."""
    status = await _status(request)
    return _json(status, 503 if status.status == "unavailable" else 200)


async def health(request: Request) -> Response:
    """Feast's answer (200, empty body) when all is well; 200 with the status body when
    degraded (a stale registry, or an online store that does not answer); 503 with the
    error shape only when no registry is loaded."""
    status = await _status(request)
    if status.status == "ready":
        return Response(status_code=200)
    if status.registry.version is not None:
        return _json(status, 200)
    details = [ErrorDetail("registry_unavailable", [], status.registry.problem or "not loaded")]
    if status.online_store.problem is not None:
        details.append(ErrorDetail("store_unavailable", [], status.online_store.problem))
    return _json(ErrorBody(details), 503)
