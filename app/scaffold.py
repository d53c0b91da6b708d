"""``ladle init``: write a runnable demo repo, the equivalent of Feast's quickstart."""

from __future__ import annotations

from pathlib import Path

import duckdb

FEATURE_STORE_YAML = """\
project: {project}
# The registry: one file, written atomically by `ladle apply`.
registry: data/registry.db
provider: local
# The embedded default online store; see README.md for Redis.
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

FEATURES_PY = '''\
"""Hourly driver statistics, as in Feast's quickstart."""

from datetime import timedelta
from typing import Any

from registry import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Float32,
    Float64,
    Int64,
    PushSource,
    RequestSource,
    ValueType,
    on_demand_feature_view,
)

driver = Entity(
    name="driver",
    join_keys=["driver_id"],
    value_type=ValueType.INT64,
    description="A driver, by id",
)

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64, description="Average daily trips"),
    ],
    online=True,
    source=driver_stats_source,
    tags={"team": "driver_performance"},
)

# Streams push fresh values here; pushed rows also land in the batch source.
driver_stats_push_source = PushSource(
    name="driver_stats_push_source",
    batch_source=driver_stats_source,
)

driver_hourly_stats_fresh = FeatureView(
    name="driver_hourly_stats_fresh",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=driver_stats_push_source,
    tags={"team": "driver_performance"},
)

# Values a request brings along, for the on-demand view below.
input_request = RequestSource(
    name="vals_to_add",
    schema=[
        Field(name="val_to_add", dtype=Int64),
        Field(name="val_to_add_2", dtype=Int64),
    ],
)


# Computed at request time from a stored feature and the request's values.
@on_demand_feature_view(
    sources=[driver_hourly_stats, input_request],
    schema=[
        Field(name="conv_rate_plus_val1", dtype=Float64),
        Field(name="conv_rate_plus_val2", dtype=Float64),
    ],
    mode="python",
)
def transformed_conv_rate(inputs: dict[str, Any]) -> dict[str, Any]:
    rates = inputs["conv_rate"]
    return {
        "conv_rate_plus_val1": [r + v for r, v in zip(rates, inputs["val_to_add"])],
        "conv_rate_plus_val2": [r + v for r, v in zip(rates, inputs["val_to_add_2"])],
    }


driver_activity = FeatureService(
    name="driver_activity",
    features=[driver_hourly_stats],
)

driver_activity_v1 = FeatureService(
    name="driver_activity_v1",
    features=[driver_hourly_stats[["conv_rate"]], transformed_conv_rate],
)

driver_activity_v2 = FeatureService(
    name="driver_activity_v2",
    features=[driver_hourly_stats, transformed_conv_rate],
)
'''


def write_driver_stats(path: Path, driver_ids: range = range(1001, 1006), days: int = 15) -> None:
    """Hourly rows per driver for the last ``days`` days, ending at the current hour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute("SELECT setseed(0.42)")
        target = str(path).replace("'", "''")
        con.execute(
            f"""
            COPY (
                SELECT d::BIGINT AS driver_id,
                       ts AS event_timestamp,
                       date_trunc('second', now()) AS created,
                       random()::FLOAT AS conv_rate,
                       random()::FLOAT AS acc_rate,
                       (random() * 1000)::BIGINT AS avg_daily_trips
                FROM range({driver_ids.start}, {driver_ids.stop}) AS drivers(d),
                     generate_series(
                         date_trunc('hour', now()) - INTERVAL {int(days)} DAY,
                         date_trunc('hour', now()),
                         INTERVAL 1 HOUR
                     ) AS hours(ts)
                ORDER BY ts, d
            ) TO '{target}' (FORMAT parquet)
            """
        )
    finally:
        con.close()


def init_repo(target: Path) -> Path:
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already exists and is not empty")
    project = "".join(c if c.isalnum() else "_" for c in target.resolve().name) or "demo"
    target.mkdir(parents=True, exist_ok=True)
    (target / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(project=project))
    (target / "features.py").write_text(FEATURES_PY)
    write_driver_stats(target / "data" / "driver_stats.parquet")
    return target
