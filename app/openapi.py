"""The OpenAPI 3.1 document (GET /openapi.json) and its docs page (GET /docs).

Bodies are described by the same msgspec structs that decode and encode them, so the
document cannot drift from the wire format. Every route of the app is listed once in
OPERATIONS, with the statuses it really answers; tests/app/test_openapi.py fails when a
route of app.asgi has no entry here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.errors import ErrorBody
from app.health import Status
from app.materialize_api import Accepted, MaterializeIncrementalRequest, MaterializeRequest
from app.overload import PROBE_PATHS
from app.schemas import GetOnlineFeaturesRequest, GetOnlineFeaturesResponse
from app.write_api import PushRequest, WriteToOnlineStoreRequest

#: A response whose body is the JSON literal ``null``.
NULL_BODY = "null"


@dataclass(frozen=True)
class Reply:
    description: str
    #: A msgspec struct, NULL_BODY, or None for an empty body.
    body: type | str | None = ErrorBody


@dataclass(frozen=True)
class QueryFlag:
    """A boolean query parameter: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``)."""

    name: str
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    replies: dict[int, Reply]
    request: type | None = None
    example: dict[str, Any] | None = None
    query: tuple[QueryFlag, ...] = field(default=())


# ---- the replies every body-taking route shares ---------------------------------------

_TOO_LARGE = Reply(
    "`body_too_large`: the body is longer than `feature_server.limits.max_body_bytes`."
)
_STORE_DOWN = Reply("`store_unavailable`: the online store did not answer.")


def _invalid(*types: str) -> Reply:
    common = ("json_invalid", "missing", "type_error", "too_deep")
    listed = ", ".join(f"`{t}`" for t in (*common, *types))
    return Reply(
        f"The request is invalid ({listed}); `loc` is the path of the offending field, "
        "`msg` says what is wrong."
    )


def _server_fault(what: str) -> Reply:
    return Reply(f"A server fault, never a client's mistake: {what}.")


_CONV = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"]
_PUSH_DF = {
    "driver_id": [1001],
    "event_timestamp": ["2026-11-21T08:00:00Z"],
    "conv_rate": [0.5],
    "acc_rate": [0.9],
    "avg_daily_trips": [12],
}
_MATERIALIZE_FLAGS = (
    QueryFlag("async", "Answer 202 at once and materialize in the background."),
    QueryFlag("force", "Run even if another run is materializing one of the views."),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/get-online-features",
        "Read the freshest feature values of some entities",
        "Entities are columnar (join key -> one value per row). The response is columnar "
        "too: `results[i]` holds the values, statuses and event timestamps of column "
        "`metadata.feature_names[i]`, join keys first.",
        {
            200: Reply("The feature values, one per entity row.", GetOnlineFeaturesResponse),
            404: Reply(
                "`feature_view_not_found`, `feature_not_found` or `feature_service_not_found`."
            ),
            413: _TOO_LARGE,
            422: _invalid(
                "empty",
                "ragged",
                "entity_value",
                "unknown_join_key",
                "missing_join_key",
                "missing_request_data",
                "invalid_feature_reference",
                "duplicate_feature",
                "name_collision",
                "conflict",
                "feature_view_offline",
                "too_many",
            ),
            500: _server_fault("`transformation_failed`, an on-demand view's function failed"),
            503: Reply(
                "`store_unavailable` (the online store did not answer), `registry_unavailable`, "
                "or `precompute_stale` (a precomputed service whose vectors need "
                "`ladle precompute SERVICE`)."
            ),
        },
        GetOnlineFeaturesRequest,
        {"entities": {"driver_id": [1001, 1002]}, "features": _CONV},
    ),
    Operation(
        "post",
        "/push",
        "Push fresh rows through a push source",
        "To every feature view fed by the push source (`to: online`), to its batch source "
        "(`offline`), or both. The whole request is checked before anything is written, "
        "and the online part is applied atomically; with `online_and_offline` a failed "
        "online write removes the new offline file again.",
        {
            200: Reply("Written.", None),
            202: Reply("Accepted: offline batching is on and the offline rows are buffered.", None),
            404: Reply("`push_source_not_found`."),
            413: _TOO_LARGE,
            422: _invalid("invalid_column", "too_many"),
            500: _server_fault(
                "`transformation_failed`, an on-demand view computed on write failed"
            ),
            503: Reply(
                "`store_unavailable` or `offline_store_unavailable`: a store did not answer "
                "or cannot be written; nothing of the request was applied."
            ),
            507: Reply(
                "`offline_store_full`: the offline store's disk is full (or a file size "
                "limit was reached); nothing of the request was applied."
            ),
        },
        PushRequest,
        {"push_source_name": "driver_stats_push_source", "df": _PUSH_DF, "to": "online"},
    ),
    Operation(
        "post",
        "/write-to-online-store",
        "Write rows of one feature view straight to the online store",
        "The same checks and guarantees as an online push.",
        {
            200: Reply("Written; the body is `null`.", NULL_BODY),
            404: Reply("`feature_view_not_found`."),
            413: _TOO_LARGE,
            422: _invalid("invalid_column", "too_many"),
            500: _server_fault(
                "`transformation_failed`, an on-demand view computed on write failed"
            ),
            503: _STORE_DOWN,
        },
        WriteToOnlineStoreRequest,
        {"feature_view_name": "driver_hourly_stats", "df": _PUSH_DF},
    ),
    Operation(
        "post",
        "/materialize",
        "Copy offline rows of a time window into the online store",
        "Keeps the newest row per entity with `start_ts` <= event time <= `end_ts`. "
        "`feature_views` defaults to every online view. Times are ISO 8601 (no offset "
        "means UTC). With `disable_event_timestamp: true` every row is stamped with the "
        "time of the request and the window is optional.",
        {
            200: Reply("Done; the body is `null`.", NULL_BODY),
            202: Reply("Started in the background (`?async=true`).", Accepted),
            404: Reply("`feature_view_not_found`."),
            409: Reply("`materialization_in_progress`: add `?force=true` to run anyway."),
            413: _TOO_LARGE,
            422: _invalid("invalid_timestamp", "invalid_window"),
            503: Reply(
                "`materialization_failed` or `store_unavailable`: the offline data could "
                "not be read or the online store did not answer."
            ),
        },
        MaterializeRequest,
        {
            "start_ts": "2026-11-20T00:00:00",
            "end_ts": "2026-11-21T00:00:00",
            "feature_views": ["driver_hourly_stats"],
        },
        _MATERIALIZE_FLAGS,
    ),
    Operation(
        "post",
        "/materialize-incremental",
        "Materialize each view from where its last run ended",
        "A view's first run starts at `end_ts` minus its ttl.",
        {
            200: Reply("Done; the body is `null`.", NULL_BODY),
            202: Reply("Started in the background (`?async=true`).", Accepted),
            404: Reply("`feature_view_not_found`."),
            409: Reply("`materialization_in_progress`: add `?force=true` to run anyway."),
            413: _TOO_LARGE,
            422: _invalid("invalid_timestamp"),
            503: Reply(
                "`materialization_failed` or `store_unavailable`: the offline data could "
                "not be read or the online store did not answer."
            ),
        },
        MaterializeIncrementalRequest,
        {"end_ts": "2026-11-21T09:00:00"},
        _MATERIALIZE_FLAGS,
    ),
    Operation(
        "get",
        "/health",
        "Is the worker alive (Feast's health check)",
        "Liveness: fails only when the worker has no registry loaded. A stale registry or "
        "an online store that does not answer is reported in a status body, with 200.",
        {
            200: Reply(
                "Alive. The body is empty when all is well; when degraded it is the JSON "
                "status body of /ready.",
                None,
            ),
            503: Reply("`registry_unavailable`: no registry is loaded."),
        },
    ),
    Operation(
        "get",
        "/ready",
        "Can the worker answer reads",
        "Readiness: 503 until a registry is loaded and while the online store does not "
        "answer. A registry that cannot be re-read while the last good one serves is "
        "`degraded`, still 200.",
        {
            200: Reply("`ready` or `degraded`.", Status),
            503: Reply("`unavailable`: no registry, or the online store does not answer.", Status),
        },
    ),
)

_REF = "#/components/schemas/{name}"


def _content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


_BODY_TIMEOUT = Reply(
    "`body_timeout`: the body did not arrive within `feature_server.limits.body_timeout_seconds`."
)
_UNAUTHENTICATED = Reply(
    "With `auth: oidc`, the bearer token is missing (`not_authenticated`) or not valid "
    "(`invalid_token`); `WWW-Authenticate` says which."
)
_FORBIDDEN = Reply("`forbidden`: the token is valid but no permission grants the action.")
_OVERLOADED = (
    "`overloaded`: the worker is serving its `--worker-connections` limit of requests; "
    "`Retry-After` says when to try again; or `auth_unavailable` (with `auth: oidc`, the "
    "identity provider's keys cannot be loaded)"
)


def _with_shared_replies(op: Operation) -> dict[int, Reply]:
    """Replies that do not depend on the route: slow bodies, auth and overload."""
    if op.path in PROBE_PATHS or op.path in ("/openapi.json", "/docs"):
        return op.replies
    replies = {**op.replies, 401: _UNAUTHENTICATED, 403: _FORBIDDEN}
    if op.request is not None:
        replies[408] = _BODY_TIMEOUT
    current = replies.get(503)
    text = f"{current.description.rstrip('.')}; or {_OVERLOADED}." if current else _OVERLOADED
    replies[503] = Reply(text[0].upper() + text[1:])
    return replies


def _operation(op: Operation, refs: dict[type, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "description": op.description,
        "operationId": op.path.strip("/").replace("-", "_") or "root",
    }
    if op.query:
        out["parameters"] = [
            {
                "name": flag.name,
                "in": "query",
                "required": False,
                "description": flag.description,
                "schema": {"type": "boolean", "default": False},
            }
            for flag in op.query
        ]
    if op.request is not None:
        out["requestBody"] = {"required": True, "content": _content(refs[op.request], op.example)}
    responses: dict[str, Any] = {}
    for status, reply in sorted(_with_shared_replies(op).items()):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.body == NULL_BODY:
            entry["content"] = _content({"type": "null"})
        elif isinstance(reply.body, type):
            entry["content"] = _content(refs[reply.body])
        responses[str(status)] = entry
    out["responses"] = responses
    return out


def build_document() -> dict[str, Any]:
    structs: list[type] = []
    for op in OPERATIONS:
        for kind in (op.request, *(reply.body for reply in op.replies.values())):
            if isinstance(kind, type) and kind not in structs:
                structs.append(kind)
    schemas, components = msgspec.json.schema_components(structs, ref_template=_REF)
    refs = dict(zip(structs, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ladle",
            "version": _version(),
            "description": "An online feature server that speaks the Feast feature-server "
            'HTTP JSON API. Every error has the shape `{"detail": [{"type", "loc", '
            '"msg", "input"}]}`.',
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def _version() -> str:
    try:
        return metadata.version("ladle")
    except metadata.PackageNotFoundError:
        return "0"


@functools.cache
def document_bytes() -> bytes:
    """Built on first use and kept: the document depends only on the code."""
    return msgspec.json.encode(build_document())


DOCS_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ladle API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


async def openapi_json(request: Request) -> Response:
    return Response(document_bytes(), media_type="application/json")


async def docs_page(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)
