"""Ladle's app plus POST /floor: the same server, minus the feature lookup.

    LADLE_REPO=/path/to/repo hypercorn --worker-class uvloop --workers 2 bench.floor_app:app

``app`` is exactly what ``hypercorn app:main`` serves (same routes, exception handlers and
lifespan, so the registry and the online store are loaded as usual) with one more route
appended after Ladle's own:

POST /floor
    Reads the body, decodes it exactly as /get-online-features does
    (``app.errors.decode_body`` with ``app.schemas.request_decoder`` ->
    ``GetOnlineFeaturesRequest``, 422 on bad input) and returns a fixed,
    pre-encoded one-row reply in Feast's response shape. It never touches the registry,
    the plan cache or the online store. Its throughput is the "floor" cost of
    HTTP parsing + routing + body read + JSON decode + response on this server stack;
    /get-online-features can only be slower.

The route is appended (not prepended) so /get-online-features is matched exactly as in
production; /floor pays for the two failed route matches in front of it, which is noise.
Run hypercorn from the project root so that ``bench`` is importable.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from app import create_app
from app.errors import decode_body
from app.schemas import (
    FeatureVector,
    GetOnlineFeaturesResponse,
    ResponseMetadata,
    request_decoder,
    response_encoder,
)

#: A fixed 1-row answer for driver_hourly_stats:{conv_rate,acc_rate,avg_daily_trips}.
_TS = "2026-01-01T00:00:00Z"
FLOOR_REPLY: bytes = response_encoder.encode(
    GetOnlineFeaturesResponse(
        results=[
            FeatureVector([1001], ["PRESENT"], ["1970-01-01T00:00:00Z"]),
            FeatureVector([0.5], ["PRESENT"], [_TS]),
            FeatureVector([0.25], ["PRESENT"], [_TS]),
            FeatureVector([42], ["PRESENT"], [_TS]),
        ],
        metadata=ResponseMetadata(
            feature_names=["driver_id", "conv_rate", "acc_rate", "avg_daily_trips"]
        ),
    )
)


async def floor(request: Request) -> Response:
    # Same body read, decoder and error path as app/online_features.py.
    decode_body(request_decoder, await request.body())
    return Response(FLOOR_REPLY, media_type="application/json")


def create_floor_app(repo: str | Path | None = None) -> Starlette:
    """Ladle's app for ``repo`` (default: $LADLE_REPO, else the working directory) + /floor."""
    ladle = create_app(repo)
    ladle.add_route("/floor", floor, methods=["POST"])
    return ladle


app = create_floor_app()
