"""GET /health: 200 with an empty body (as Feast) when the registry is loaded and the
online store answers; 503 with the reason otherwise."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.errors import ApiError
from app.state import ServingState
from stores.base import StoreUnavailable


async def health(request: Request) -> Response:
    state: ServingState = request.app.state.ladle
    if state.snapshot is None:
        raise ApiError(503, "registry_unavailable", [], "the registry is not loaded")
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", [], str(exc)) from None
    return Response(status_code=200)
