"""The OpenAPI document covers every route, is served as built once, and has a docs page."""

from __future__ import annotations

import httpx
import msgspec
import orjson
import pytest
from starlette.routing import Route

from app import create_app
from app.errors import ErrorBody
from app.health import Status
from app.openapi import OPERATIONS, Operation, build_document, document_bytes


def _app_routes() -> set[tuple[str, str]]:
    app = create_app("/nonexistent")  # routes exist before any repo is read
    routes = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r}: only plain routes are checked"
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            if method != "HEAD":  # starlette adds HEAD to every GET
                routes.add((route.path, method.lower()))
    return routes


def test_every_route_is_documented() -> None:
    documented = {(op.path, op.method) for op in OPERATIONS}
    routes = _app_routes()
    assert routes - documented == set(), "add these routes to app/openapi.py OPERATIONS"
    assert documented - routes == set(), "these documented operations have no route"


def test_document_paths_and_parameters() -> None:
    doc = build_document()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/get-online-features",
        "/push",
        "/write-to-online-store",
        "/materialize",
        "/materialize-incremental",
        "/health",
        "/ready",
    }
    for path in ("/materialize", "/materialize-incremental"):
        params = doc["paths"][path]["post"]["parameters"]
        assert {(p["name"], p["in"], p["schema"]["type"]) for p in params} == {
            ("async", "query", "boolean"),
            ("force", "query", "boolean"),
        }
    gof = doc["paths"]["/get-online-features"]["post"]
    # 401/403 (auth), 408 (slow body) and 503 overloaded apply to every read.
    assert set(gof["responses"]) == {
        *("200", "401", "403", "404", "408", "413", "422", "500", "503"),
    }
    assert "overloaded" in gof["responses"]["503"]["description"]
    assert "401" not in doc["paths"]["/health"]["get"]["responses"]
    assert gof["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GetOnlineFeaturesRequest"
    }
    push = doc["paths"]["/push"]["post"]["responses"]
    assert "content" not in push["200"]  # an empty body
    assert push["507"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    schemas = doc["components"]["schemas"]
    assert schemas["GetOnlineFeaturesRequest"]["required"] == ["entities"]
    assert schemas["PushRequest"]["properties"]["to"]["enum"] == [
        "offline",
        "online",
        "online_and_offline",
    ]
    assert schemas["ErrorDetail"]["required"] == ["type", "loc", "msg"]


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_error_replies_are_error_bodies(op: Operation) -> None:
    """Every 4xx/5xx a route documents has the one error shape, and its ``type``s named;
    /ready answers its status body whatever the status, as probes and dashboards read it."""
    for status, reply in op.replies.items():
        if op.path == "/ready":
            assert reply.body is Status
        elif status >= 400:
            assert reply.body is ErrorBody, (op.path, status)
            assert "`" in reply.description, f"{op.path} {status}: name the error types"


async def test_served_document_is_built_once(client: httpx.AsyncClient) -> None:
    document_bytes.cache_clear()
    first = await client.get("/openapi.json")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert orjson.loads(first.content) == build_document()
    second = await client.get("/openapi.json")
    assert second.content == first.content
    assert document_bytes.cache_info().misses == 1


async def test_docs_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text and "/openapi.json" in response.text


async def test_documented_examples_match_the_request_structs() -> None:
    """The examples the docs page offers decode as their operation's request."""
    for op in OPERATIONS:
        if op.request is not None:
            assert op.example is not None, op.path
            msgspec.convert(op.example, op.request)
