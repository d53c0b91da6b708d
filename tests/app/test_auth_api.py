"""Authentication and permissions through the HTTP API: 401, 403 and 503 per endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth_jwks import JwksError
from app.state import ServingState
from tests.app.auth_support import (
    JwksServer,
    SigningKey,
    claims,
    jwks,
    oidc_config,
)
from tests.app.conftest import serve
from tests.support import apply_now, write_parquet, write_repo

KEY = SigningKey.rsa("key-1")

VIEWS = """
from datetime import timedelta
from typing import Any
from registry import (AuthzedAction, Entity, FeatureService, FeatureView, Field, FileSource,
                      Float32, Float64, GroupBasedPolicy, Int64, OnDemandFeatureView,
                      Permission, PushSource, RequestSource, RoleBasedPolicy, ValueType,
                      WRITE, on_demand_feature_view)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp")
push = PushSource(name="driver_push", batch_source=stats)
schema = [Field(name="conv_rate", dtype=Float32), Field(name="trips", dtype=Int64)]

driver_hourly_stats = FeatureView(name="driver_hourly_stats", entities=[driver], schema=schema,
                                  source=stats, tags={"team": "ranking"})
driver_fresh = FeatureView(name="driver_fresh", entities=[driver], schema=schema, source=push)
secret_stats = FeatureView(name="secret_stats", entities=[driver], schema=schema, source=stats)
vals = RequestSource(name="vals", schema=[Field(name="val", dtype=Int64)])


@on_demand_feature_view(sources=[driver_hourly_stats, vals],
                        schema=[Field(name="conv_plus", dtype=Float64)])
def conv_plus(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"conv_plus": [c + v for c, v in zip(inputs["conv_rate"], inputs["val"])]}


@on_demand_feature_view(sources=[secret_stats, vals],
                        schema=[Field(name="secret_plus", dtype=Float64)])
def driver_secret_plus(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"secret_plus": [c + v for c, v in zip(inputs["conv_rate"], inputs["val"])]}


ranking_v1 = FeatureService(name="ranking_v1", features=[driver_hourly_stats[["conv_rate"]]])
"""

PERMISSIONS = """
readers = Permission(
    name="readers", types=[FeatureView, OnDemandFeatureView, FeatureService],
    name_patterns=["driver_.*", "conv_plus", "ranking_.*"],
    policy=RoleBasedPolicy(roles=["reader"]), actions=[AuthzedAction.READ_ONLINE])
team = Permission(
    name="team-ranking", types=FeatureView, required_tags={"team": "ranking"},
    policy=GroupBasedPolicy(groups=["ranking-team"]), actions=AuthzedAction.READ_ONLINE)
ingest = Permission(
    name="ingest", types=[FeatureView, PushSource], name_patterns="driver_.*",
    policy=GroupBasedPolicy(groups=["ingest"]), actions=WRITE)
stream = Permission(
    name="stream", types=[FeatureView, PushSource], name_patterns="driver_.*",
    policy=GroupBasedPolicy(groups=["stream"]), actions=[AuthzedAction.WRITE_ONLINE])
ops = Permission(name="ops", types=[FeatureView], policy=RoleBasedPolicy(roles=["ops"]),
                 actions=[AuthzedAction.MATERIALIZE])
"""

STATS_SQL = """
SELECT 1001::BIGINT AS driver_id, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS event_timestamp,
       0.5::FLOAT AS conv_rate, 7::BIGINT AS trips
"""


def build(root: Path, definitions: str, auth: dict[str, Any] | None) -> Path:
    extra = {"auth": auth} if auth is not None else {}
    write_repo(root, definitions, extra_config=extra)
    write_parquet(root / "data" / "stats.parquet", STATS_SQL)
    (root / "jwks.json").write_text(json.dumps(jwks(KEY)))
    apply_now(root)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    auth = oidc_config(jwks_file="jwks.json", client_secret="s3cr3t-client-value")
    return build(tmp_path_factory.mktemp("auth"), VIEWS + PERMISSIONS, auth)


@pytest.fixture
async def client(repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(repo):
        yield c


def bearer(**token_claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY.sign(claims(**token_claims))}"}


READ = {"entities": {"driver_id": [1001]}, "features": ["driver_hourly_stats:conv_rate"]}
ROW = {"driver_id": [1001], "event_timestamp": ["2026-01-02T00:00:00Z"], "conv_rate": [0.25],
       "trips": [3]}  # fmt: skip
REQUESTS: dict[str, dict[str, Any]] = {
    "/get-online-features": READ,
    "/push": {"push_source_name": "driver_push", "df": ROW},
    "/write-to-online-store": {"feature_view_name": "driver_hourly_stats", "df": ROW},
    "/materialize": {
        "start_ts": "2025-12-31T00:00:00",
        "end_ts": "2026-01-02T00:00:00",
        "feature_views": ["driver_hourly_stats"],
    },
    "/materialize-incremental": {
        "end_ts": "2026-01-02T00:00:00",
        "feature_views": ["driver_hourly_stats"],
    },
}


def detail(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["detail"] and len(body["detail"]) == 1
    item: dict[str, Any] = body["detail"][0]
    return item


# ---- 401 ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(REQUESTS))
async def test_missing_token_is_401_on_every_protected_endpoint(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json=REQUESTS[path])
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ladle"'
    assert detail(response) == {
        "type": "not_authenticated",
        "loc": ["header", "Authorization"],
        "msg": "a bearer token is required",
    }


@pytest.mark.parametrize("path", list(REQUESTS))
async def test_bad_token_is_401_and_never_echoed(client: httpx.AsyncClient, path: str) -> None:
    token = SigningKey("key-1", "RS256", SigningKey.rsa("x").private).sign(claims())
    response = await client.post(
        path, json=REQUESTS[path], headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert detail(response)["type"] == "invalid_token"
    assert detail(response)["msg"] == "the token's signature does not verify"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="ladle", error="invalid_token", '
        'error_description="the token\'s signature does not verify"'
    )
    assert token not in response.text and token.split(".")[1] not in response.text


async def test_wrong_scheme_and_empty_bearer_are_401(client: httpx.AsyncClient) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer ", "Bearer"):
        response = await client.post(
            "/get-online-features", json=READ, headers={"Authorization": header}
        )
        assert response.status_code == 401, header
        assert detail(response)["type"] == "not_authenticated"


async def test_expired_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/get-online-features", json=READ, headers=bearer(roles=["reader"], exp=1_000_000)
    )
    assert response.status_code == 401
    assert detail(response)["msg"] == "the token has expired"


async def test_authentication_comes_before_reading_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/get-online-features", content=b"{not json")
    assert response.status_code == 401


async def test_health_stays_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200


# ---- 403: reads -----------------------------------------------------------------------


async def test_role_policy_allows_reading_matching_views(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/get-online-features", json=READ, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 200, response.text
    service = {"entities": {"driver_id": [1001]}, "feature_service": "ranking_v1"}
    response = await client.post(
        "/get-online-features", json=service, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 200, response.text


async def test_token_without_the_role_is_403(client: httpx.AsyncClient) -> None:
    response = await client.post("/get-online-features", json=READ, headers=bearer(roles=["other"]))
    assert response.status_code == 403
    assert detail(response) == {
        "type": "forbidden",
        "loc": ["body", "features"],
        "msg": "this token may not read_online feature view 'driver_hourly_stats' "
        "(permission 'readers' needs one of the roles ['reader']; "
        "permission 'team-ranking' needs one of the groups ['ranking-team'])",
    }


async def test_view_no_permission_matches_is_403(client: httpx.AsyncClient) -> None:
    query = {"entities": {"driver_id": [1001]}, "features": ["secret_stats:conv_rate"]}
    response = await client.post(
        "/get-online-features", json=query, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 403
    assert (
        detail(response)["msg"] == "no permission grants read_online on feature view 'secret_stats'"
    )


async def test_on_demand_view_needs_its_source_views_too(client: httpx.AsyncClient) -> None:
    query: dict[str, Any] = {"entities": {"driver_id": [1001], "val": [1]},
                             "features": ["conv_plus:conv_plus"]}  # fmt: skip
    response = await client.post(
        "/get-online-features", json=query, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 200, response.text
    # driver_secret_plus matches "driver_.*", but its source secret_stats matches nothing.
    query["features"] = ["driver_secret_plus:secret_plus"]
    response = await client.post(
        "/get-online-features", json=query, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 403
    assert "feature view 'secret_stats'" in detail(response)["msg"]


async def test_group_policy_with_required_tags(client: httpx.AsyncClient) -> None:
    team = bearer(groups=["ranking-team"])
    response = await client.post("/get-online-features", json=READ, headers=team)
    assert response.status_code == 200, response.text
    fresh = {"entities": {"driver_id": [1001]}, "features": ["driver_fresh:conv_rate"]}
    response = await client.post("/get-online-features", json=fresh, headers=team)
    assert response.status_code == 403  # driver_fresh has no team tag
    # The feature service itself is not covered by the tag rule.
    service = {"entities": {"driver_id": [1001]}, "feature_service": "ranking_v1"}
    response = await client.post("/get-online-features", json=service, headers=team)
    assert response.status_code == 403
    assert detail(response)["loc"] == ["body", "feature_service"]
    assert "feature service 'ranking_v1'" in detail(response)["msg"]


async def test_unknown_view_is_still_404_for_a_valid_token(client: httpx.AsyncClient) -> None:
    query = {"entities": {"driver_id": [1001]}, "features": ["nope:conv_rate"]}
    response = await client.post(
        "/get-online-features", json=query, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 404


# ---- 403: writes and materialization --------------------------------------------------


async def test_push_needs_write_online_or_offline_by_destination(
    client: httpx.AsyncClient,
) -> None:
    body: dict[str, Any] = {"push_source_name": "driver_push", "df": ROW}
    for to, ingest, stream in (
        ("online", 200, 200),
        ("offline", 200, 403),
        ("online_and_offline", 200, 403),
    ):
        body["to"] = to
        response = await client.post("/push", json=body, headers=bearer(groups=["ingest"]))
        assert response.status_code == ingest, (to, response.text)
        response = await client.post("/push", json=body, headers=bearer(groups=["stream"]))
        assert response.status_code == stream, (to, response.text)
        if stream == 403:
            assert detail(response)["loc"] == ["body", "push_source_name"]
            assert detail(response)["msg"] == (
                "this token may not write_offline push source 'driver_push' "
                "(permission 'ingest' needs one of the groups ['ingest'])"
            )
    response = await client.post("/push", json=body, headers=bearer(roles=["reader"]))
    assert response.status_code == 403


async def test_forbidden_push_writes_nothing(client: httpx.AsyncClient, repo: Path) -> None:
    before = sorted(repo.rglob("*.parquet"))
    body = {"push_source_name": "driver_push", "df": ROW, "to": "online_and_offline"}
    response = await client.post("/push", json=body, headers=bearer(groups=["stream"]))
    assert response.status_code == 403
    assert sorted(repo.rglob("*.parquet")) == before


async def test_forbidden_comes_before_checking_the_data(client: httpx.AsyncClient) -> None:
    body = {"push_source_name": "driver_push", "df": {"driver_id": ["not a number"]}}
    response = await client.post("/push", json=body, headers=bearer(roles=["reader"]))
    assert response.status_code == 403


async def test_write_to_online_store_needs_write_online(client: httpx.AsyncClient) -> None:
    body = REQUESTS["/write-to-online-store"]
    response = await client.post(
        "/write-to-online-store", json=body, headers=bearer(groups=["stream"])
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/write-to-online-store", json=body, headers=bearer(roles=["reader"])
    )
    assert response.status_code == 403
    assert detail(response) == {
        "type": "forbidden",
        "loc": ["body", "feature_view_name"],
        "msg": "this token may not write_online feature view 'driver_hourly_stats' "
        "(permission 'ingest' needs one of the groups ['ingest']; "
        "permission 'stream' needs one of the groups ['stream'])",
    }


@pytest.mark.parametrize("path", ["/materialize", "/materialize-incremental"])
async def test_materialize_needs_materialize(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json=REQUESTS[path], headers=bearer(roles=["ops"]))
    assert response.status_code == 200, response.text
    response = await client.post(path, json=REQUESTS[path], headers=bearer(groups=["ingest"]))
    assert response.status_code == 403
    assert detail(response)["loc"] == ["body", "feature_views"]
    # Without feature_views, every online view is materialized, so each is checked.
    response = await client.post(
        path, json={**REQUESTS[path], "feature_views": None}, headers=bearer(roles=["ops"])
    )
    assert response.status_code == 200, response.text


# ---- caching --------------------------------------------------------------------------


async def test_decisions_are_cached_per_roles_and_resources(client: httpx.AsyncClient) -> None:
    state: ServingState = client._transport.app.state.ladle  # type: ignore[attr-defined]
    assert state.auth is not None
    authorizer = state.auth.authorizer
    for _ in range(3):
        response = await client.post(
            "/get-online-features", json=READ, headers=bearer(roles=["reader"])
        )
        assert response.status_code == 200
    assert len(authorizer._decisions) == 1
    # Another token with the same roles shares the decision; other roles get their own.
    await client.post("/get-online-features", json=READ, headers=bearer(roles=["reader"], sub="b"))
    assert len(authorizer._decisions) == 1
    await client.post("/get-online-features", json=READ, headers=bearer(roles=["other"]))
    assert len(authorizer._decisions) == 2


async def test_registry_change_invalidates_decisions(tmp_path: Path) -> None:
    auth = oidc_config(jwks_file="jwks.json")
    root = build(tmp_path, VIEWS + PERMISSIONS, auth)
    async for client in serve(root, registry_ttl_sec=3600):
        state: ServingState = client._transport.app.state.ladle  # type: ignore[attr-defined]
        headers = bearer(roles=["reader"])
        assert (
            await client.post("/get-online-features", json=READ, headers=headers)
        ).status_code == 200
        (root / "features.py").write_text(
            VIEWS + PERMISSIONS.replace('roles=["reader"]', 'roles=["analyst"]')
        )
        await asyncio.sleep(0.01)  # a new mtime for the registry file
        apply_now(root)
        assert await state.refresher.check()
        response = await client.post("/get-online-features", json=READ, headers=headers)
        assert response.status_code == 403
        assert "['analyst']" in detail(response)["msg"]


# ---- no permissions, no auth ----------------------------------------------------------


async def test_oidc_without_permissions_allows_every_authenticated_caller(tmp_path: Path) -> None:
    root = build(tmp_path, VIEWS, oidc_config(jwks_file="jwks.json"))
    async for client in serve(root):
        query = {"entities": {"driver_id": [1001]}, "features": ["secret_stats:conv_rate"]}
        assert (await client.post("/get-online-features", json=query)).status_code == 401
        response = await client.post("/get-online-features", json=query, headers=bearer())
        assert response.status_code == 200, response.text
        body = {"push_source_name": "driver_push", "df": ROW}
        assert (await client.post("/push", json=body, headers=bearer())).status_code == 200


async def test_no_auth_is_the_default_and_ignores_permissions(tmp_path: Path) -> None:
    root = build(tmp_path, VIEWS + PERMISSIONS, None)
    async for client in serve(root):
        state: ServingState = client._transport.app.state.ladle  # type: ignore[attr-defined]
        assert state.auth is None
        query = {"entities": {"driver_id": [1001]}, "features": ["secret_stats:conv_rate"]}
        assert (await client.post("/get-online-features", json=query)).status_code == 200
        garbage = {"Authorization": "Bearer not-even-a-jwt"}
        assert (
            await client.post("/get-online-features", json=query, headers=garbage)
        ).status_code == 200


# ---- the provider's keys over HTTP ----------------------------------------------------


async def test_jwks_url_down_gives_503_to_tokens_and_401_without(tmp_path: Path) -> None:
    down = JwksServer(jwks(KEY))
    down.stop()
    root = build(tmp_path, VIEWS + PERMISSIONS, oidc_config(jwks_url=down.url))
    async for client in serve(root):
        response = await client.post(
            "/get-online-features", json=READ, headers=bearer(roles=["reader"])
        )
        assert response.status_code == 503
        assert detail(response)["type"] == "auth_unavailable"
        assert "127.0.0.1" not in response.text  # the provider's address stays in the logs
        assert response.headers["retry-after"] == "1"
        assert (await client.post("/get-online-features", json=READ)).status_code == 401
        assert (await client.get("/health")).status_code == 200


async def test_jwks_url_rotation_through_the_api(tmp_path: Path) -> None:
    server = JwksServer(jwks(KEY))
    try:
        root = build(tmp_path, VIEWS + PERMISSIONS, oidc_config(jwks_url=server.url))
        async for client in serve(root):
            headers = bearer(roles=["reader"])
            assert (
                await client.post("/get-online-features", json=READ, headers=headers)
            ).status_code == 200
            rotated = SigningKey.rsa("key-2")
            server.document = jwks(KEY, rotated)
            token = rotated.sign(claims(roles=["reader"]))
            response = await client.post(
                "/get-online-features", json=READ, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
    finally:
        server.stop()


# ---- secrets --------------------------------------------------------------------------


async def test_tokens_and_client_secrets_are_never_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = KEY.sign(claims(roles=["reader"]))
    expired = KEY.sign(claims(exp=1_000_000))
    forged = SigningKey("key-1", "RS256", SigningKey.rsa("x").private).sign(claims())
    texts = []
    for token in (good, expired, forged, "garbage.token.value"):
        for path, body in REQUESTS.items():
            response = await client.post(
                path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            texts.append(response.text)
    assert any("refused a token" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "".join(texts)
    for secret in ("garbage.token.value", "s3cr3t-client-value"):
        assert secret not in logged
    for token in (good, expired, forged):
        for part in token.split("."):  # not even a piece of one
            assert part not in logged


async def test_worker_does_not_start_with_an_unusable_jwks_file(tmp_path: Path) -> None:
    root = build(tmp_path, VIEWS, oidc_config(jwks_file="jwks.json"))
    (root / "jwks.json").write_text('{"keys": []}')
    with pytest.raises(JwksError, match="holds no usable signing key"):
        async for _ in serve(root):
            pass
