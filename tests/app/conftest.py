"""A small driver/customer repo, materialized into each online store, served in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from app import create_app
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.factory import open_registry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us
from tests.support import RedisServer, write_parquet, write_repo

DEFINITIONS = """
from datetime import timedelta
from registry import (Array, Bool, Bytes, Entity, FeatureService, FeatureView, Field,
                      FileSource, Float32, Float64, Int64, Json, Map, String, UnixTimestamp,
                      ValueType)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

stats_source = FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp",
                          created_timestamp_column="created")
profile_source = FileSource(path="data/driver_profile.parquet", timestamp_field="ts")
customer_source = FileSource(path="data/customer.parquet", timestamp_field="ts")
pair_source = FileSource(path="data/pairs.parquet", timestamp_field="ts")

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="conv_rate", dtype=Float32), Field(name="acc_rate", dtype=Float32),
            Field(name="avg_daily_trips", dtype=Int64)],
    source=stats_source)

driver_stats_copy = FeatureView(
    name="driver_stats_copy", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="conv_rate", dtype=Float32)], source=stats_source)

driver_profile = FeatureView(
    name="driver_profile", entities=[driver],
    schema=[Field(name="rating", dtype=Float64), Field(name="vehicle", dtype=String),
            Field(name="certified", dtype=Bool)],
    source=profile_source)

customer_profile = FeatureView(
    name="customer_profile", entities=[customer],
    schema=[Field(name="name", dtype=String), Field(name="tags", dtype=Array(String)),
            Field(name="scores", dtype=Array(Float64)), Field(name="attrs", dtype=Map),
            Field(name="config", dtype=Json), Field(name="avatar", dtype=Bytes),
            Field(name="signed_up", dtype=UnixTimestamp)],
    source=customer_source)

driver_customer = FeatureView(
    name="driver_customer", entities=[driver, customer],
    schema=[Field(name="trips_together", dtype=Int64)], source=pair_source)

driver_activity = FeatureService(
    name="driver_activity",
    features=[driver_profile[["vehicle"]], driver_hourly_stats[["avg_daily_trips", "conv_rate"]]])
"""

#: Latest rows: conv_rate = (id - 1000) / 10, avg_daily_trips = id - 900, two hours ago;
#: 1004's latest row is two days old (outside the 1-day ttl); 1005's conv_rate is null.
STATS_SQL = """
SELECT driver_id, ts AS event_timestamp, ts AS created,
       CASE WHEN age = 3 THEN 9.0 WHEN driver_id = 1005 THEN NULL
            ELSE (driver_id - 1000) / 10 END::FLOAT AS conv_rate,
       0.5::FLOAT AS acc_rate,
       (driver_id - 900 + (age - 2) * 1000)::BIGINT AS avg_daily_trips
FROM (
    SELECT d::BIGINT AS driver_id, age,
           date_trunc('hour', now()) - to_hours(CASE WHEN d = 1004 THEN age * 24 ELSE age END)
               AS ts
    FROM range(1001, 1006) AS drivers(d), (VALUES (2), (3)) AS ages(age)
)
"""


def _write_data(root: Path) -> None:
    write_parquet(root / "data/driver_stats.parquet", STATS_SQL)
    write_parquet(
        root / "data/driver_profile.parquet",
        """
        SELECT * FROM (VALUES (1001::BIGINT, 4.5::DOUBLE, 'sedan', true),
                              (1002, 3.9, 'suv', false), (1003, 4.1, 'van', NULL))
               AS t(driver_id, rating, vehicle, certified),
             (SELECT now() - INTERVAL 5 DAY AS ts)""",
    )
    write_parquet(
        root / "data/customer.parquet",
        """
        SELECT 'c1' AS customer_id, 'Ada' AS name, ['a', 'b'] AS tags,
               [1.5, 'NaN'::DOUBLE, 'inf'::DOUBLE] AS scores,
               MAP {'tier': 'gold'} AS attrs, '{"x": 1}' AS config,
               '\\x01\\x02'::BLOB AS avatar,
               TIMESTAMPTZ '2024-01-02 03:04:05.123+00' AS signed_up,
               TIMESTAMPTZ '2026-01-01 00:00:00+00' AS ts""",
    )
    write_parquet(
        root / "data/pairs.parquet",
        """
        SELECT 1001::BIGINT AS driver_id, 'c1' AS customer_id, 7::BIGINT AS trips_together,
               now() AS ts""",
    )


async def build_repo(
    root: Path, online_store: dict[str, object], registry: dict[str, object] | None = None
) -> Path:
    """Write, apply and materialize the repo; ``registry`` is its config (default: a file)."""
    write_repo(
        root, DEFINITIONS, online_store=online_store, extra_config={"registry": registry or {}}
    )
    _write_data(root)
    settings = load_repo_config(root)
    await apply_repo(settings)
    store = create_online_store(settings)
    backend = open_registry(settings)
    await store.start()
    try:
        await materialize(backend, FileOfflineStore(root), store, None, now_us(), 0)
    finally:
        await store.close()
        await backend.close()
    return root


async def serve(root: Path, **kwargs: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(root, **kwargs)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ladle") as client:
            yield client


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per test module and store: the read tests never change its data."""
    if request.param == "sqlite":
        store: dict[str, object] = {"type": "sqlite", "path": "data/online.db"}
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis.Redis(port=server.port, db=1).flushdb()
        store = {"type": "redis", "connection_string": f"{server.connection_string},db=1"}
    return asyncio.run(build_repo(tmp_path_factory.mktemp("repo"), store))


@pytest.fixture
async def client(repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(repo):
        yield c
