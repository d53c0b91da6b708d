"""Small feature repos with real Parquet data, for the registry tests."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from registry.apply import apply_repo
from registry.config import RepoSettings, load_repo_config
from registry.repo import RepoError
from tests.support import write_parquet, write_repo

HEADER = """\
from datetime import timedelta
from registry import (Array, Bool, Bytes, Entity, FeatureService, FeatureView, Field,
                      FileSource, Float32, Float64, Int32, Int64, Json, Map, PushSource,
                      String, UnixTimestamp, ValueType)
"""

#: A driver entity and a source over data/stats.parquet (see STATS_SQL).
BASE = (
    HEADER
    + """
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",
                   created_timestamp_column="created")
"""
)

#: driver_id BIGINT, event_timestamp/created TIMESTAMP, conv_rate FLOAT, acc_rate DOUBLE,
#: trips BIGINT, city VARCHAR, scores DOUBLE[], active BOOLEAN, score_dec DECIMAL(10,2).
STATS_SQL = """
SELECT driver_id, event_timestamp, event_timestamp AS created, conv_rate, acc_rate, trips,
       city, scores, active, score_dec
FROM (VALUES
    (1001::BIGINT, TIMESTAMP '2024-01-01 00:00:00', 0.5::FLOAT, 0.9::DOUBLE, 10::BIGINT,
     'Oslo', [1.0, 2.0]::DOUBLE[], true, 1.25::DECIMAL(10, 2)),
    (1002::BIGINT, TIMESTAMP '2024-01-01 01:00:00', 0.25::FLOAT, 0.8::DOUBLE, 20::BIGINT,
     'Rome', [3.0]::DOUBLE[], false, 2.50::DECIMAL(10, 2))
) AS t(driver_id, event_timestamp, conv_rate, acc_rate, trips, city, scores, active,
       score_dec)
"""

#: customer_id VARCHAR, ts TIMESTAMP WITH TIME ZONE, spend DOUBLE.
CUSTOMERS_SQL = """
SELECT 'c1' AS customer_id, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS ts, 12.5::DOUBLE AS spend
"""


def make_repo(
    root: Path, definitions: str, *, with_data: bool = True, project: str = "test_project"
) -> RepoSettings:
    """A repo folder with features.py holding ``definitions`` and (optionally) its data."""
    write_repo(root, definitions, project=project)
    if with_data:
        write_parquet(root / "data" / "stats.parquet", STATS_SQL)
        write_parquet(root / "data" / "customers.parquet", CUSTOMERS_SQL)
    return load_repo_config(root)


def write_file(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def apply_error(settings: RepoSettings) -> str:
    """Apply a repo that must fail; check that nothing was written and return the message."""
    with pytest.raises(RepoError) as info:
        asyncio.run(apply_repo(settings))
    assert not settings.registry_path.exists()
    return str(info.value)
