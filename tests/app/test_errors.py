"""Every client mistake gets a 4xx JSON error naming the field; never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

URL = "/get-online-features"
CONV = "driver_hourly_stats:conv_rate"

CASES: list[tuple[str, Any, int, str, list[Any]]] = [
    ("truncated json", b'{"entities":{"driver_id":[1001]', 422, "json_invalid", ["body", 31]),
    ("malformed json", b'{"entities": {"driver_id": [1001}}', 422, "json_invalid", ["body", 32]),
    ("empty body", b"", 422, "missing", ["body"]),
    ("entities missing", {"features": [CONV]}, 422, "missing", ["body", "entities"]),
    (
        "entities not an object",
        {"entities": [1001], "features": [CONV]},
        422,
        "type_error",
        ["body", "entities"],
    ),
    (
        "entity column not a list",
        {"entities": {"driver_id": 1001}, "features": [CONV]},
        422,
        "type_error",
        ["body", "entities", "driver_id"],
    ),
    (
        "features not strings",
        {"entities": {"driver_id": [1]}, "features": [1]},
        422,
        "type_error",
        ["body", "features", 0],
    ),
    (
        "full_feature_names not bool",
        {"entities": {"driver_id": [1]}, "features": [CONV], "full_feature_names": "yes"},
        422,
        "type_error",
        ["body", "full_feature_names"],
    ),
    (
        "unknown view",
        {"entities": {"driver_id": [1]}, "features": ["nope:conv_rate"]},
        404,
        "feature_view_not_found",
        ["body", "features", 0],
    ),
    (
        "unknown feature",
        {"entities": {"driver_id": [1]}, "features": [CONV, "driver_hourly_stats:nope"]},
        404,
        "feature_not_found",
        ["body", "features", 1],
    ),
    (
        "unknown service",
        {"entities": {"driver_id": [1]}, "feature_service": "nope"},
        404,
        "feature_service_not_found",
        ["body", "feature_service"],
    ),
    (
        "reference without colon",
        {"entities": {"driver_id": [1]}, "features": ["conv_rate"]},
        422,
        "invalid_feature_reference",
        ["body", "features", 0],
    ),
    (
        "versioned reference",
        {"entities": {"driver_id": [1]}, "features": ["driver_hourly_stats@v2:conv_rate"]},
        422,
        "invalid_feature_reference",
        ["body", "features", 0],
    ),
    (
        "duplicate reference",
        {"entities": {"driver_id": [1]}, "features": [CONV, CONV]},
        422,
        "duplicate_feature",
        ["body", "features", 1],
    ),
    (
        "unknown join key",
        {"entities": {"no_such_key": [1]}, "features": [CONV]},
        422,
        "unknown_join_key",
        ["body", "entities", "no_such_key"],
    ),
    (
        "extra join key",
        {"entities": {"driver_id": [1], "customer_id": ["c1"]}, "features": [CONV]},
        422,
        "unknown_join_key",
        ["body", "entities", "customer_id"],
    ),
    (
        "missing join key",
        {"entities": {"driver_id": [1]}, "features": ["driver_customer:trips_together"]},
        422,
        "missing_join_key",
        ["body", "entities"],
    ),
    (
        "ragged entity lists",
        {
            "entities": {"driver_id": [1, 2], "customer_id": ["c1"]},
            "features": ["driver_customer:trips_together"],
        },
        422,
        "ragged",
        ["body", "entities", "customer_id"],
    ),
    (
        "empty entity list",
        {"entities": {"driver_id": []}, "features": [CONV]},
        422,
        "empty",
        ["body", "entities", "driver_id"],
    ),
    ("empty entities", {"entities": {}, "features": [CONV]}, 422, "empty", ["body", "entities"]),
    (
        "empty features",
        {"entities": {"driver_id": [1]}, "features": []},
        422,
        "empty",
        ["body", "features"],
    ),
    (
        "features and service",
        {"entities": {"driver_id": [1]}, "features": [CONV], "feature_service": "driver_activity"},
        422,
        "conflict",
        ["body", "features"],
    ),
    (
        "float id",
        {"entities": {"driver_id": [1001, 1.5]}, "features": [CONV]},
        422,
        "entity_value",
        ["body", "entities", "driver_id", 1],
    ),
    (
        "bool id",
        {"entities": {"driver_id": [True]}, "features": [CONV]},
        422,
        "entity_value",
        ["body", "entities", "driver_id", 0],
    ),
    (
        "nested id",
        {"entities": {"driver_id": [[1]]}, "features": [CONV]},
        422,
        "entity_value",
        ["body", "entities", "driver_id", 0],
    ),
    (
        "id out of range",
        {"entities": {"driver_id": [2**70]}, "features": [CONV]},
        422,
        "entity_value",
        ["body", "entities", "driver_id", 0],
    ),
    (
        "non-numeric string id",
        {"entities": {"driver_id": ["abc"]}, "features": [CONV]},
        422,
        "entity_value",
        ["body", "entities", "driver_id", 0],
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "kind", "loc"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_client_mistakes(
    client: httpx.AsyncClient, payload: Any, status: int, kind: str, loc: list[Any]
) -> None:
    if isinstance(payload, bytes):
        response = await client.post(
            URL, content=payload, headers={"content-type": "application/json"}
        )
    else:
        response = await client.post(URL, json=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    if status == 200:
        return
    (detail,) = response.json()["detail"]
    assert detail["type"] == kind
    assert detail["loc"] == loc
    assert detail["msg"]


async def test_colliding_short_names_need_full_names(client: httpx.AsyncClient) -> None:
    payload: dict[str, Any] = {
        "entities": {"driver_id": [1001]},
        "features": [CONV, "driver_stats_copy:conv_rate"],
    }
    response = await client.post(URL, json=payload)
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["type"] == "name_collision"
    assert detail["loc"] == ["body", "features", 1]
    assert "full_feature_names" in detail["msg"]
    payload["full_feature_names"] = True
    response = await client.post(URL, json=payload)
    assert response.status_code == 200
    assert response.json()["metadata"]["feature_names"] == [
        "driver_id",
        "driver_hourly_stats__conv_rate",
        "driver_stats_copy__conv_rate",
    ]


async def test_routing_errors_keep_feasts_shape(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"
    response = await client.get("/no-such-route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
