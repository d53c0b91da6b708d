"""Hostile bodies get a documented 4xx with the error shape; never a 5xx.

Each regression test below is a bug that fuzzing found; the property test at the end
mutates valid bodies byte by byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ErrorBody
from app.openapi import OPERATIONS
from tests.app.sync_app import SyncApp

GOF = "/get-online-features"
READ = {"entities": {"driver_id": [1001]}, "features": ["driver_hourly_stats:conv_rate"]}
WRITE = {
    "feature_view_name": "driver_hourly_stats",
    "df": {
        "driver_id": [1001],
        "event_timestamp": ["2026-01-01T00:00:00Z"],
        "conv_rate": [0.5],
        "acc_rate": [0.5],
        "avg_daily_trips": [3],
    },
}
VALID = {
    GOF: READ,
    "/write-to-online-store": WRITE,
    "/push": {"push_source_name": "nope", "df": {"a": [1]}},
    "/materialize": {"start_ts": "2026-01-01T00:00:00", "end_ts": "2026-01-01T00:00:00"},
    "/materialize-incremental": {"end_ts": "1970-01-02T00:00:00"},
}

#: The start of a string value in each VALID body.
STRING_VALUE = {
    GOF: b'"driver_hourly_stats:',
    "/write-to-online-store": b'"driver_hourly_stats"',
    "/push": b'"nope"',
    "/materialize": b'"2026',
    "/materialize-incremental": b'"1970',
}


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    (detail,) = msgspec.json.decode(response.content, type=ErrorBody).detail
    assert detail.type == kind, response.text
    return msgspec.to_builtins(detail)  # type: ignore[no-any-return]


@pytest.mark.parametrize("url", sorted(VALID))
async def test_invalid_utf8_is_a_422(client: httpx.AsyncClient, url: str) -> None:
    """Found by fuzzing: msgspec raised UnicodeDecodeError, which was a 500."""
    body = orjson.dumps(VALID[url])
    at = body.index(STRING_VALUE[url]) + 3  # inside a string value
    body = body[:at] + b"\xff" + body[at:]
    detail = error(await client.post(url, content=body), 422, "json_invalid")
    assert detail["loc"] == ["body", at]
    assert "UTF-8" in detail["msg"]


@pytest.mark.parametrize(
    ("body", "offset"),
    [
        (rb'{"entities":{"driver_id":["\ud800"]},"features":[]}', 27),
        (rb'{"entities":{"driver_id":[1]},"feature_service":"\udc00x"}', 49),
        (rb'{"entities":{"driver_id":[1]},"feature_service":"\ud800\ud800\udc00"}', 49),
    ],
)
async def test_lone_surrogates_are_named(
    client: httpx.AsyncClient, body: bytes, offset: int
) -> None:
    """Found by fuzzing: msgspec said "Input data was truncated" for a lone surrogate."""
    detail = error(await client.post(GOF, content=body), 422, "json_invalid")
    assert detail["loc"] == ["body", offset]
    assert "surrogate" in detail["msg"]


async def test_a_surrogate_pair_is_fine(client: httpx.AsyncClient) -> None:
    body = rb'{"entities":{"driver_id":[1001]},"feature_service":"\ud834\udd1e"}'
    detail = error(await client.post(GOF, content=body), 404, "feature_service_not_found")
    assert detail["input"] == "\U0001d11e"


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
async def test_event_times_past_year_9999_in_utc_are_refused(
    client: httpx.AsyncClient, when: str
) -> None:
    """Found by fuzzing: an offset moved such a time out of years 1-9999; it was stored,
    read back as "10000-01-01T00:59:59Z", and no later write could replace it."""
    body = {**WRITE, "df": {**WRITE["df"], "event_timestamp": [when]}}  # type: ignore[dict-item]
    detail = error(await client.post("/write-to-online-store", json=body), 422, "invalid_column")
    assert detail["loc"] == ["body", "df", "event_timestamp", 0]
    assert "years 1-9999" in detail["msg"]


@pytest.mark.parametrize("field", ["start_ts", "end_ts"])
async def test_materialize_window_past_year_9999_is_refused(
    client: httpx.AsyncClient, field: str
) -> None:
    body = {"start_ts": "2026-01-01T00:00:00", "end_ts": "2026-01-02T00:00:00"}
    body[field] = "9999-12-31T23:30:00-01:00"
    detail = error(await client.post("/materialize", json=body), 422, "invalid_timestamp")
    assert detail["loc"] == ["body", field]


@pytest.mark.parametrize("flag", ["async", "force"])
async def test_query_flags_must_be_booleans(client: httpx.AsyncClient, flag: str) -> None:
    """Found by schemathesis: ``?async=maybe`` silently ran synchronously."""
    response = await client.post(f"/materialize?{flag}=maybe", json=VALID["/materialize"])
    detail = error(response, 422, "type_error")
    assert detail["loc"] == ["query", flag]
    assert detail["input"] == "maybe"
    for accepted in ("No", "1"):  # case-insensitive; also true/false, yes/0
        response = await client.post(f"/materialize?{flag}={accepted}", json=VALID["/materialize"])
        assert response.status_code in (200, 202), response.text


async def test_a_map_with_key_and_value_keys_is_stored_as_sent(
    client: httpx.AsyncClient,
) -> None:
    """Found by hypothesis: {"key": [...], "value": [...]} was taken for DuckDB's MAP form
    and stored as {"a": 1}. Only offline reads have that form."""
    attrs = {"key": ["a"], "value": [1]}
    df = {"customer_id": ["c9"], "ts": ["2026-01-01T00:00:00Z"], "attrs": [attrs]}
    for name in ("name", "tags", "scores", "config", "avatar", "signed_up"):
        df[name] = [None]
    write = {"feature_view_name": "customer_profile", "df": df}
    assert (await client.post("/write-to-online-store", json=write)).status_code == 200
    read = {"entities": {"customer_id": ["c9"]}, "features": ["customer_profile:attrs"]}
    response = await client.post(GOF, json=read)
    assert response.json()["results"][1]["values"] == [attrs]


# ---- property: byte-level mutations of valid bodies ------------------------------------

_DOCUMENTED = {op.path: {int(s) for s in op.replies} for op in OPERATIONS}


@pytest.fixture(scope="module")
def served(repo: Path) -> Iterator[SyncApp]:
    with SyncApp(repo) as app:
        yield app


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    url = draw(st.sampled_from(sorted(VALID)))
    body = bytearray(orjson.dumps(VALID[url]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "replace", "delete", "truncate"]))
        if action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "replace" and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del body[at : at + draw(st.integers(1, 8))]
        else:
            del body[at:]
    return url, bytes(body)


@settings(max_examples=150)
@given(case=mutated())
def test_mutated_bodies_get_documented_errors(served: SyncApp, case: tuple[str, bytes]) -> None:
    url, body = case
    if url.startswith("/materialize"):
        url += "?async=true"  # a valid mutation must not wait for a whole run
    response = served.post(url, content=body)
    assert response.status_code < 500, response.text
    assert response.status_code in _DOCUMENTED[url.split("?")[0]], response.text
    if response.status_code >= 400:
        msgspec.json.decode(response.content, type=ErrorBody)
