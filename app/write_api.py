"""POST /push and POST /write-to-online-store.

A write is validated whole before anything is stored. The online part of one request is
one store call, applied atomically (one Lua script on Redis, one transaction on SQLite).
With ``to: online_and_offline`` the offline file is written first and removed again if
the online write fails, so a request is never half-applied.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.errors import ApiError, decode_body
from app.limits import check_count, read_body
from app.on_demand import TransformationFailed
from app.schemas import Columns
from app.state import ServingState
from app.writers import WriteTarget
from stores.base import OutcomeUnknown, StoreUnavailable, WriteRow
from stores.columns import ColumnError, ColumnSpec, validate_frame
from stores.offline import OfflineStoreError, dtype_for_column
from stores.offline_write import OfflineStoreFull, append_rows

PushMode = Literal["online", "offline", "online_and_offline"]


class PushRequest(msgspec.Struct):
    push_source_name: str
    df: Columns
    to: PushMode = "online"
    allow_registry_cache: bool = True
    transform_on_write: bool = True


class WriteToOnlineStoreRequest(msgspec.Struct):
    feature_view_name: str
    df: Columns
    allow_registry_cache: bool = True
    transform_on_write: bool = True


_push_decoder = msgspec.json.Decoder(PushRequest)
_write_decoder = msgspec.json.Decoder(WriteToOnlineStoreRequest)


def _validate(
    state: ServingState, df: dict[str, Any], columns: list[ColumnSpec]
) -> tuple[int, dict[str, list[Any]]]:
    first = next(iter(df.values()), None) if isinstance(df, dict) else None
    if isinstance(first, list):
        limit = state.limits.max_write_rows
        check_count(len(first), limit, ["body", "df"], "rows", "max_write_rows")
    try:
        return validate_frame(df, columns)
    except ColumnError as exc:
        loc: list[str | int] = ["body", "df"]
        if exc.column is not None:
            loc.append(exc.column)
        if exc.row is not None:
            loc.append(exc.row)
        raise ApiError(422, "invalid_column", loc, str(exc)) from None


def _extra_offline_columns(
    df: dict[str, Any], types: dict[str, str], known: list[ColumnSpec]
) -> list[ColumnSpec]:
    """Columns of the batch source that the push carries beyond what its views need.

    They are kept offline (later materializations of other views may read them), so they
    are checked against the source's column types like the rest.
    """
    names = {c.name for c in known}
    extras = []
    for name in df:
        if name in types and name not in names:
            dtype = dtype_for_column(types[name])
            if dtype is not None:
                extras.append(ColumnSpec(name, dtype, required=False))
    return extras


def _records(
    state: ServingState, target: WriteTarget, columns: dict[str, list[Any]], count: int
) -> list[WriteRow]:
    try:
        return target.rows(columns, count)
    except TransformationFailed as exc:
        state.metrics.transformation_failed(exc.view)
        # The fault is in the repo's code, not the request; nothing has been written.
        raise ApiError(500, "transformation_failed", [], str(exc)) from None


async def _write_online(state: ServingState, rows: list[WriteRow]) -> None:
    try:
        await state.store.write(rows)
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", [], str(exc)) from None


def _offline_failed(source: str, exc: Exception) -> ApiError:
    """A full disk is 507 and any other offline failure 503: both are the server's, and a
    retry may pass; the request was not applied."""
    if isinstance(exc, OfflineStoreFull):
        return ApiError(
            507,
            "offline_store_full",
            [],
            f"the offline store has no room for push source {source!r}; nothing of this "
            f"request was written: {exc}",
        )
    return ApiError(
        503,
        "offline_store_unavailable",
        [],
        f"the offline store cannot be written for push source {source!r}; nothing of this "
        f"request was written: {exc}",
    )


async def push(request: Request) -> Response:
    state: ServingState = request.app.state.ladle
    access = await state.auth.authenticate(request.scope) if state.auth is not None else None
    query = decode_body(_push_decoder, await read_body(request, state.limits, state.deadlines))
    target = state.writers.push_target(query.push_source_name)
    if target is None:
        raise ApiError(
            404,
            "push_source_not_found",
            ["body", "push_source_name"],
            f"push source {query.push_source_name!r} feeds no feature view in "
            f"project {state.project!r}",
            query.push_source_name,
        )
    if access is not None:
        access.push(query.push_source_name, query.to)
    source = target.batch_source
    assert source is not None  # a push target always has its push source's batch source
    wanted = target.columns
    types: dict[str, str] = {}
    if query.to != "online":
        try:
            types = state.writers.source_types(source)
        except OfflineStoreError as exc:
            raise ApiError(503, "offline_store_unavailable", [], str(exc)) from None
        # The df names columns as the views do; field_mapping may rename source columns.
        types = {source.field_mapping.get(col, col): t for col, t in types.items()}
        wanted = wanted + _extra_offline_columns(query.df, types, wanted)
    count, columns = _validate(state, query.df, wanted)
    state.metrics.push(query.push_source_name, query.to)
    rows = _records(state, target, columns, count) if query.to != "offline" else []

    if query.to == "online":
        await _write_online(state, rows)
        return Response(status_code=200)

    resolved = state.offline.resolve(source)
    to_source = {target: column for column, target in source.field_mapping.items()}
    offline_columns = {to_source.get(n, n): v for n, v in columns.items() if n in types}
    stamps = {
        to_source.get(c.name, c.name)
        for c in wanted
        if c.dtype in ("timestamp", "UnixTimestamp") and c.name in types
    }
    types = {to_source.get(n, n): t for n, t in types.items()}
    if state.batcher is not None:
        # While the source's buffered rows cannot be written (a full disk, say), new rows
        # are refused rather than piled up: try once more, and refuse before any write.
        if state.batcher.failure(resolved) is not None:
            await state.batcher.flush(resolved)
            failure = state.batcher.failure(resolved)
            if failure is not None:
                raise _offline_failed(query.push_source_name, failure)
        # Online first: if it fails, nothing was buffered. Buffered rows are written by
        # the batcher (on size, on its interval, at shutdown), hence 202.
        if rows:
            await _write_online(state, rows)
        await state.batcher.add(resolved, source, types, offline_columns, stamps)
        return Response(status_code=202)

    try:
        written_file = await anyio.to_thread.run_sync(
            append_rows, resolved, source, types, offline_columns, stamps
        )
    except OfflineStoreError as exc:
        raise _offline_failed(query.push_source_name, exc) from None
    if rows:
        try:
            await state.store.write(rows)
        except OutcomeUnknown as exc:
            # The online write may have happened: keep the offline rows, which a retry
            # (newest event wins) makes consistent again.
            raise ApiError(503, "store_unavailable", [], str(exc)) from None
        except StoreUnavailable as exc:
            written_file.unlink(missing_ok=True)  # not applied online: never half-applied
            raise ApiError(503, "store_unavailable", [], str(exc)) from None
    return Response(status_code=200)


async def write_to_online_store(request: Request) -> Response:
    state: ServingState = request.app.state.ladle
    access = await state.auth.authenticate(request.scope) if state.auth is not None else None
    query = decode_body(_write_decoder, await read_body(request, state.limits, state.deadlines))
    target = state.writers.view(query.feature_view_name)
    if target is None:
        raise ApiError(
            404,
            "feature_view_not_found",
            ["body", "feature_view_name"],
            f"feature view {query.feature_view_name!r} does not exist in project {state.project!r}",
            query.feature_view_name,
        )
    if access is not None:
        access.write_online(query.feature_view_name)
    count, columns = _validate(state, query.df, target.columns)
    await _write_online(state, _records(state, target, columns, count))
    return Response(b"null", media_type="application/json")
