"""POST /materialize and POST /materialize-incremental.

``?async=true`` answers 202 at once and runs in the background; a view that another run
(in any worker or the CLI) is materializing answers 409 unless ``?force=true``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.errors import ApiError, decode_body
from app.limits import read_body
from app.state import ServingState
from registry.backend import RegistryError, ViewLocked
from stores import timestamps
from stores.base import StoreUnavailable
from stores.materialize import (
    MaterializationInProgress,
    MaterializeError,
    materialize,
)
from stores.offline import OfflineStoreError

log = logging.getLogger("ladle.materialize")


class MaterializeRequest(msgspec.Struct):
    start_ts: str | None = None
    end_ts: str | None = None
    feature_views: list[str] | None = None
    #: Stamp every row with the time of the request instead of its own event time.
    disable_event_timestamp: bool = False
    full_feature_names: bool = False
    version: str | None = None


class MaterializeIncrementalRequest(msgspec.Struct):
    end_ts: str
    feature_views: list[str] | None = None
    full_feature_names: bool = False
    version: str | None = None


class Accepted(msgspec.Struct):
    status: str
    feature_views: list[str]


_full_decoder = msgspec.json.Decoder(MaterializeRequest)
_incremental_decoder = msgspec.json.Decoder(MaterializeIncrementalRequest)
_encoder = msgspec.json.Encoder()


def _time(text: str | None, field: str) -> int:
    if text is None:
        raise ApiError(422, "missing", ["body", field], "field required")
    try:
        return timestamps.parse(text)
    except ValueError as exc:
        raise ApiError(422, "invalid_timestamp", ["body", field], str(exc), text) from None


_FLAG_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter; a value that is not one is a 422, not a silent false."""
    text = request.query_params.get(name)
    if text is None:
        return False
    value = _FLAG_VALUES.get(text.lower())
    if value is None:
        raise ApiError(
            422,
            "type_error",
            ["query", name],
            "expected a boolean: true or false (also 1/0, yes/no)",
            text,
        )
    return value


def _views(state: ServingState, names: list[str] | None) -> list[str]:
    snapshot = state.snapshot
    assert snapshot is not None
    if not names:
        return [v.name for v in snapshot.feature_views.values() if v.online]
    for index, name in enumerate(names):
        if name not in snapshot.feature_views:
            raise ApiError(
                404,
                "feature_view_not_found",
                ["body", "feature_views", index],
                f"feature view {name!r} does not exist in project {state.project!r}",
                name,
            )
    return names


async def _run(
    request: Request, views: list[str], end_us: int, start_us: int | None, event_time_us: int | None
) -> Response:
    state: ServingState = request.app.state.ladle
    force, background = _flag(request, "force"), _flag(request, "async")

    async def job() -> object:
        started = time.perf_counter()
        ok = False
        try:
            results = await materialize(
                state.registry,
                state.offline,
                state.store,
                views,
                end_us,
                start_us,
                force=force,
                event_time_us=event_time_us,
            )
            ok = True
            return results
        finally:
            for view in views:
                state.metrics.materialized(view, ok, time.perf_counter() - started)

    if not force:
        busy = await _busy(state, views)
        if busy:
            raise ApiError(
                409,
                "materialization_in_progress",
                ["body", "feature_views"],
                f"feature view {busy!r} is already being materialized; "
                "add ?force=true to run anyway",
            )
    if background:
        task: asyncio.Task[object] = asyncio.create_task(_logged(job(), views))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return Response(
            _encoder.encode(Accepted("accepted", views)), 202, media_type="application/json"
        )
    try:
        await job()
    except MaterializationInProgress as exc:
        raise ApiError(
            409, "materialization_in_progress", ["body", "feature_views"], str(exc)
        ) from None
    except (StoreUnavailable, OfflineStoreError, MaterializeError) as exc:
        raise ApiError(503, "materialization_failed", [], str(exc)) from None
    except RegistryError as exc:
        raise ApiError(503, "registry_unavailable", [], str(exc)) from None
    return Response(b"null", media_type="application/json")


async def _busy(state: ServingState, views: list[str]) -> str | None:
    for view in views:
        try:
            async with state.registry.view_lock(view):
                pass
        except ViewLocked:
            return view
        except RegistryError as exc:
            raise ApiError(503, "registry_unavailable", [], str(exc)) from None
    return None


async def _logged(job: object, views: list[str]) -> object:
    assert asyncio.iscoroutine(job)
    try:
        return await job
    except Exception:
        log.exception("background materialization of %s failed", ", ".join(views))
        return None


async def materialize_range(request: Request) -> Response:
    state: ServingState = request.app.state.ladle
    access = await state.auth.authenticate(request.scope) if state.auth is not None else None
    query = decode_body(_full_decoder, await read_body(request, state.limits, state.deadlines))
    views = _views(state, query.feature_views)
    if access is not None:
        access.materialize(views)
    now = timestamps.now_us()
    if query.disable_event_timestamp:
        start = _time(query.start_ts, "start_ts") if query.start_ts else 0
        end = _time(query.end_ts, "end_ts") if query.end_ts else now
        event_time: int | None = now
    else:
        start, end, event_time = (
            _time(query.start_ts, "start_ts"),
            _time(query.end_ts, "end_ts"),
            None,
        )
    if start > end:
        raise ApiError(
            422,
            "invalid_window",
            ["body", "start_ts"],
            f"start_ts {timestamps.format_us(start)} is after end_ts {timestamps.format_us(end)}",
        )
    return await _run(request, views, end, start, event_time)


async def materialize_incremental(request: Request) -> Response:
    state: ServingState = request.app.state.ladle
    access = await state.auth.authenticate(request.scope) if state.auth is not None else None
    query = decode_body(
        _incremental_decoder, await read_body(request, state.limits, state.deadlines)
    )
    views = _views(state, query.feature_views)
    if access is not None:
        access.materialize(views)
    return await _run(request, views, _time(query.end_ts, "end_ts"), None, None)
