"""The ASGI application: routes, error rendering and the worker lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.artifacts import load_static_artifacts
from app.errors import ApiError
from app.health import health, ready
from app.materialize_api import materialize_incremental, materialize_range
from app.online_features import get_online_features
from app.state import ServingState
from app.write_api import push, write_to_online_store
from registry.backend import RegistryError
from stores.base import StoreUnavailable

log = logging.getLogger("ladle.app")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return Response(exc.body(), exc.status, headers=exc.headers, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors keep Feast's shape: {"detail": "Not Found"}."""
    assert isinstance(exc, HTTPException)
    return Response(
        orjson.dumps({"detail": exc.detail}),
        exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = ApiError(500, "internal_error", [], "internal server error").body()
    return Response(body, 500, media_type="application/json")


def create_app(
    repo: str | Path | None = None, *, registry_ttl_sec: float | None = None
) -> Starlette:
    """Build the app for a feature repo (default: $LADLE_REPO, else the working dir).

    Nothing is read until the server starts the app, so ``hypercorn app:main`` can import
    it anywhere.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = ServingState.from_repo(repo, registry_ttl_sec)
        load_static_artifacts(state.settings.root, app)
        try:
            await state.start()
        except (RegistryError, StoreUnavailable) as exc:
            log.error("cannot start serving: %s", exc)  # one clear line above the traceback
            raise
        app.state.ladle = state
        if state.metrics.request and app.middleware_stack is not None:
            # Wrapped only when on: with request metrics off, requests take no extra step.
            endpoints = frozenset(r.path for r in app.routes if isinstance(r, Route))
            app.middleware_stack = state.metrics.middleware(app.middleware_stack, endpoints)
        try:
            yield
        finally:
            await state.stop()

    return Starlette(
        routes=[
            Route("/get-online-features", get_online_features, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/push", push, methods=["POST"]),
            Route("/write-to-online-store", write_to_online_store, methods=["POST"]),
            Route("/materialize", materialize_range, methods=["POST"]),
            Route("/materialize-incremental", materialize_incremental, methods=["POST"]),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
