"""POST /get-online-features against both online stores, through the real read path."""

from __future__ import annotations

import re

import httpx

from tests.support import free_port  # noqa: F401  (keeps the helper import path checked)

URL = "/get-online-features"
STATS = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


def column(body: dict, name: str) -> dict:
    return body["results"][body["metadata"]["feature_names"].index(name)]


async def test_values_statuses_and_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, json={"entities": {"driver_id": [1001, 1002]}, "features": STATS}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["results", "metadata"]
    assert body["metadata"] == {"feature_names": ["driver_id", "conv_rate", "avg_daily_trips"]}
    ids, conv, trips = body["results"]
    assert ids == {
        "values": [1001, 1002],
        "statuses": ["PRESENT", "PRESENT"],
        "event_timestamps": ["1970-01-01T00:00:00Z"] * 2,
    }
    # Float32 values come back widened to double, as Feast shows them.
    assert conv["values"] == [0.10000000149011612, 0.20000000298023224]
    assert trips["values"] == [101, 102]
    assert conv["statuses"] == trips["statuses"] == ["PRESENT", "PRESENT"]
    assert all(RFC3339.match(ts) for ts in conv["event_timestamps"])
    assert conv["event_timestamps"] == trips["event_timestamps"]


async def test_feature_order_is_the_request_order(client: httpx.AsyncClient) -> None:
    features = [
        "driver_hourly_stats:avg_daily_trips",
        "driver_hourly_stats:acc_rate",
        "driver_hourly_stats:conv_rate",
    ]
    for order in (features, features[::-1]):
        body = (
            await client.post(URL, json={"entities": {"driver_id": [1001]}, "features": order})
        ).json()
        assert body["metadata"]["feature_names"][1:] == [f.split(":")[1] for f in order]


async def test_missing_entity_is_not_found(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(URL, json={"entities": {"driver_id": [1001, 999999]}, "features": STATS})
    ).json()
    conv = column(body, "conv_rate")
    assert conv["values"][1] is None
    assert conv["statuses"] == ["PRESENT", "NOT_FOUND"]
    assert conv["event_timestamps"][1] == "1970-01-01T00:00:00Z"


async def test_value_older_than_ttl_is_outside_max_age(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(URL, json={"entities": {"driver_id": [1004, 1001]}, "features": STATS})
    ).json()
    trips = column(body, "avg_daily_trips")
    assert trips["statuses"] == ["OUTSIDE_MAX_AGE", "PRESENT"]
    assert trips["values"] == [None, 101]
    assert trips["event_timestamps"][0] != "1970-01-01T00:00:00Z"


async def test_stored_null_is_null_value(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(URL, json={"entities": {"driver_id": [1005]}, "features": STATS})
    ).json()
    assert column(body, "conv_rate")["statuses"] == ["NULL_VALUE"]
    assert column(body, "conv_rate")["values"] == [None]
    assert column(body, "avg_daily_trips")["values"] == [105]


async def test_view_without_ttl_never_expires(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL,
            json={
                "entities": {"driver_id": [1001, 1003]},
                "features": ["driver_profile:rating", "driver_profile:certified"],
            },
        )
    ).json()
    assert column(body, "rating")["values"] == [4.5, 4.1]
    assert column(body, "certified")["statuses"] == ["PRESENT", "NULL_VALUE"]


async def test_duplicate_and_string_ids(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL, json={"entities": {"driver_id": [1001, "1001", 1002]}, "features": STATS}
        )
    ).json()
    assert body["results"][0]["values"] == [1001, 1001, 1002]
    assert column(body, "avg_daily_trips")["values"] == [101, 101, 102]


async def test_multi_view_request_across_entities(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL,
            json={
                "entities": {"driver_id": [1001, 1002], "customer_id": ["c1", "c1"]},
                "features": [
                    "driver_profile:vehicle",
                    "customer_profile:name",
                    "driver_customer:trips_together",
                    "driver_hourly_stats:avg_daily_trips",
                ],
            },
        )
    ).json()
    assert body["metadata"]["feature_names"] == [
        "driver_id",
        "customer_id",
        "vehicle",
        "name",
        "trips_together",
        "avg_daily_trips",
    ]
    assert body["results"][1]["values"] == ["c1", "c1"]
    assert column(body, "vehicle")["values"] == ["sedan", "suv"]
    assert column(body, "name")["values"] == ["Ada", "Ada"]
    assert column(body, "trips_together")["values"] == [7, None]
    assert column(body, "trips_together")["statuses"] == ["PRESENT", "NOT_FOUND"]
    assert column(body, "avg_daily_trips")["values"] == [101, 102]


async def test_complex_types(client: httpx.AsyncClient) -> None:
    features = [
        f"customer_profile:{f}"
        for f in ("tags", "scores", "attrs", "config", "avatar", "signed_up")
    ]
    body = (
        await client.post(URL, json={"entities": {"customer_id": ["c1"]}, "features": features})
    ).json()
    values = {
        name: r["values"][0]
        for name, r in zip(body["metadata"]["feature_names"], body["results"], strict=True)
    }
    assert values["tags"] == ["a", "b"]
    assert values["scores"] == [1.5, "NaN", "Infinity"]
    assert values["attrs"] == {"tier": "gold"}
    assert values["config"] == '{"x": 1}'
    assert values["avatar"] == "AQI="  # base64 of b"\x01\x02"
    assert values["signed_up"] == "2024-01-02T03:04:05.123Z"
    assert column(body, "tags")["event_timestamps"] == ["2026-01-01T00:00:00Z"]


async def test_feature_service_keeps_declared_order(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL, json={"entities": {"driver_id": [1002]}, "feature_service": "driver_activity"}
        )
    ).json()
    assert body["metadata"]["feature_names"] == [
        "driver_id",
        "vehicle",
        "avg_daily_trips",
        "conv_rate",
    ]
    assert [r["values"][0] for r in body["results"]] == [1002, "suv", 102, 0.20000000298023224]


async def test_full_feature_names(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL,
            json={
                "entities": {"driver_id": [1002]},
                "feature_service": "driver_activity",
                "full_feature_names": True,
            },
        )
    ).json()
    assert body["metadata"]["feature_names"] == [
        "driver_id",
        "driver_profile__vehicle",
        "driver_hourly_stats__avg_daily_trips",
        "driver_hourly_stats__conv_rate",
    ]


async def test_version_metadata(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            URL,
            json={
                "entities": {"driver_id": [1001]},
                "features": STATS,
                "include_feature_view_version_metadata": True,
            },
        )
    ).json()
    assert body["metadata"]["feature_view_metadata"] == [{"name": "driver_hourly_stats"}]


async def test_plain_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    payload = b'{"entities":{"driver_id":[1001]},"features":["driver_hourly_stats:conv_rate"]}'
    response = await client.post(URL, content=payload, headers={"content-type": "text/plain"})
    assert response.status_code == 200
