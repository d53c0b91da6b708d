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

from app import gc_tuning, lifecycle, serve_options
from app.access_log import with_access_log
from app.artifacts import load_static_artifacts
from app.errors import ApiError
from app.health import health, ready
from app.materialize_api import materialize_incremental, materialize_range
from app.online_features import OnlineFeaturesEndpoint
from app.openapi import docs_page, openapi_json
from app.overload import limit_concurrency
from app.state import ServingState
from app.write_api import push, write_to_online_store
from registry.backend import RegistryError
from stores.base import StoreUnavailable

log = logging.getLogger("ladle.app")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    state: ServingState | None = getattr(request.app.state, "ladle", None)
    if state is not None and state.metrics.request:
        state.metrics.error(exc.status, exc.details[0].type)
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
    state: ServingState | None = getattr(request.app.state, "ladle", None)
    if state is not None and state.metrics.request:
        state.metrics.error(500, "internal_error")
    body = ApiError(500, "internal_error", [], "internal server error").body()
    return Response(body, 500, media_type="application/json")


def _wrap(app: Starlette, state: ServingState, options: serve_options.ServeOptions) -> None:
    """Install the optional request steps; what is switched off takes no step at all."""
    stack = app.middleware_stack or app.build_middleware_stack()
    metrics = state.metrics
    refused = (lambda: metrics.error(503, "overloaded")) if metrics.request else None
    stack = limit_concurrency(stack, options.worker_connections, refused)
    if state.metrics.request:
        endpoints = frozenset(r.path for r in app.routes if isinstance(r, Route))
        stack = state.metrics.middleware(stack, endpoints)
    if serve_options.app_access_log(state.settings.config.feature_server):
        stack = with_access_log(stack)
    app.middleware_stack = stack


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
        options = serve_options.resolve({}, state.settings.config.feature_server)
        load_static_artifacts(state.settings.root, app)
        try:
            await state.start()
        except (RegistryError, StoreUnavailable) as exc:
            log.error("cannot start serving: %s", exc)  # one clear line above the traceback
            raise
        app.state.ladle = state
        _wrap(app, state, options)
        thresholds = gc_tuning.tune_for_serving()
        lifecycle.signal_ready()
        try:
            yield
        finally:
            gc_tuning.restore(thresholds)
            await state.stop()

    return Starlette(
        routes=[
            Route("/get-online-features", OnlineFeaturesEndpoint(), methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/push", push, methods=["POST"]),
            Route("/write-to-online-store", write_to_online_store, methods=["POST"]),
            Route("/materialize", materialize_range, methods=["POST"]),
            Route("/materialize-incremental", materialize_incremental, methods=["POST"]),
            Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
            Route("/docs", docs_page, methods=["GET"], include_in_schema=False),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
