"""POST /get-online-features: decode, resolve, read, assemble, encode (or, for a feature
service with precomputed vectors, read and join its JSON pieces).

The hottest route is a plain ASGI app rather than a starlette endpoint: no Request and
Response objects, the body taken straight from ``receive`` and the answer sent in two
messages. Errors are raised as ApiError and rendered by the app's exception handlers.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from app.assemble import read_online_features
from app.entities import check_shape, coerce_column
from app.errors import ApiError, decode_body
from app.limits import check_count, receive_body
from app.on_demand import TransformationFailed
from app.precomputed import read_precomputed
from app.schemas import request_decoder, response_encoder
from app.state import ServingState
from stores.base import StoreUnavailable
from stores.timestamps import now_us


async def get_online_features(scope: Scope, receive: Receive, send: Send) -> None:
    state: ServingState = scope["app"].state.ladle
    access = await state.auth.authenticate(scope) if state.auth is not None else None
    query = decode_body(
        request_decoder, await receive_body(scope, receive, state.limits, state.deadlines)
    )

    rows = check_shape(query.entities)
    limits = state.limits
    check_count(
        rows, limits.max_entity_rows, ["body", "entities"], "entity rows", "max_entity_rows"
    )
    check_count(
        len(query.features), limits.max_features, ["body", "features"], "features", "max_features"
    )
    plan = state.plans.get(
        query.features,
        query.feature_service,
        query.full_feature_names,
        tuple(query.entities),
        query.include_feature_view_version_metadata,
    )
    if access is not None:
        access.read_online(plan, query.feature_service)
    columns = [
        coerce_column(name, query.entities[name], coerce)
        for name, coerce in zip(plan.entity_names, plan.coercers, strict=True)
    ]
    try:
        if plan.precomputed is not None:
            answer = await read_precomputed(plan.precomputed, columns, rows, state.store, now_us())
            body = answer.body
        else:
            response = await read_online_features(plan, columns, rows, state.store, now_us())
            body = response_encoder.encode(response)
    except StoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", [], str(exc)) from None
    except TransformationFailed as exc:
        # The fault is in the repo's code, not the request: a 500 that names the view.
        state.metrics.transformation_failed(exc.view)
        raise ApiError(500, "transformation_failed", [], str(exc)) from None
    if state.metrics.request:
        scope.setdefault("state", {})["metric_labels"] = plan.metric_labels
    if state.metrics.online:
        statuses = (
            answer.statuses()
            if plan.precomputed is not None
            else [vector.statuses for vector in response.results]
        )
        state.metrics.online_request(rows, statuses)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class OnlineFeaturesEndpoint:
    """The route's ASGI app (starlette calls a non-function endpoint as one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await get_online_features(scope, receive, send)
