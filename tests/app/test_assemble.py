"""The read path's column-at-a-time fast path against a row-by-row model of the statuses.

Records are written straight into the SQLite store (so a record can lack a feature, as
one written before the feature was added does), then random requests mix fresh, stale,
missing and partial records, nulls, NaN and infinities, duplicate and unknown ids, two
key groups and features interleaved across views. Every answer must match the model.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stores import codec, timestamps
from stores.base import WriteRow
from stores.keys import make_key_encoder
from stores.sqlite import SqliteOnlineStore
from tests.app.sync_app import SyncApp
from tests.support import apply_now, write_parquet, write_repo
from tests.value_strategies import shown_float

DEFINITIONS = """
from datetime import timedelta
from registry import (Array, Entity, FeatureView, Field, FileSource, Float32, Float64,
                      Int64, String, UnixTimestamp, ValueType)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
source = FileSource(path="data/rows.parquet", timestamp_field="ts")

alpha = FeatureView(name="alpha", entities=[driver], ttl=timedelta(days=1), source=source,
    schema=[Field(name="f", dtype=Float64), Field(name="i", dtype=Int64),
            Field(name="t", dtype=UnixTimestamp), Field(name="l", dtype=Array(Float64))])
beta = FeatureView(name="beta", entities=[driver], source=source,
    schema=[Field(name="s", dtype=String), Field(name="g", dtype=Float32)])
gamma = FeatureView(name="gamma", entities=[customer], ttl=timedelta(hours=1),
    source=source, schema=[Field(name="n", dtype=Int64)])
"""
SOURCE_SQL = """
SELECT 1::BIGINT AS driver_id, 'c'::VARCHAR AS customer_id, TIMESTAMP '2026-01-01' AS ts,
       1::DOUBLE AS f, 1::BIGINT AS i, TIMESTAMP '2026-01-01' AS t, [1.0]::DOUBLE[] AS l,
       'a' AS s, 1::FLOAT AS g, 1::BIGINT AS n
"""
VIEWS: dict[str, dict[str, str]] = {
    "alpha": {"f": "Float64", "i": "Int64", "t": "UnixTimestamp", "l": "Array(Float64)"},
    "beta": {"s": "String", "g": "Float32"},
    "gamma": {"n": "Int64"},
}
TTL_US = {"alpha": 86_400_000_000, "beta": 0, "gamma": 3_600_000_000}
KEY = {"alpha": "driver_id", "beta": "driver_id", "gamma": "customer_id"}
DRIVERS = list(range(1, 9))
CUSTOMERS = ["c1", "c2", "c3", "c4"]

#: (view, entity) -> (event_ts_us, stored values); absent: no record.
Records = dict[tuple[str, Any], tuple[int, dict[str, Any]]]


def _value(dtype: str, rng: random.Random) -> Any:
    if dtype == "Float64":
        return rng.choice([0.25, -3.5, 1e300, math.nan, math.inf, -math.inf])
    if dtype == "Float32":
        return rng.choice([0.5, 2.0, math.nan])
    if dtype == "Int64":
        return rng.randrange(-(2**63), 2**63)
    if dtype == "UnixTimestamp":
        return rng.choice([0, 1_700_000_000_000_000, 1_700_000_000_123_000, 1_700_000_000_000_007])
    if dtype == "Array(Float64)":
        return rng.choice([[], [1.5, math.nan], [math.inf], [0.0, None], [2.0, 3.0]])
    return rng.choice(["x", "ünï", ""])


def _record(view: str, now: int, rng: random.Random) -> tuple[int, dict[str, Any]]:
    """A fresh, stale (for views with a ttl) or partial record, some values null."""
    age = rng.choice([0, 60_000_000, 2 * TTL_US[view] or 60_000_000])
    values: dict[str, Any] = {}
    for feature, dtype in VIEWS[view].items():
        roll = rng.random()
        if roll < 0.1:
            continue  # written before this feature existed
        values[feature] = None if roll < 0.25 else _value(dtype, rng)
    return now - age - rng.randrange(1000), values


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Records]]:
    root = write_repo(tmp_path_factory.mktemp("assemble"), DEFINITIONS)
    write_parquet(root / "data/rows.parquet", SOURCE_SQL)
    apply_now(root)
    rng = random.Random(7)
    now = timestamps.now_us()
    records: Records = {}
    rows = []
    for view in VIEWS:
        dtype = "String" if view == "gamma" else "Int64"
        encode = make_key_encoder("test_project", [(KEY[view], dtype)])
        for entity in CUSTOMERS if view == "gamma" else DRIVERS:
            if rng.random() < 0.15:
                continue  # never written
            event_ts, values = records[(view, entity)] = _record(view, now, rng)
            blob = codec.encode_record(event_ts, values)
            rows.append(WriteRow(encode([entity]), view, event_ts, blob))
    store = SqliteOnlineStore(root / "data/online.db")
    asyncio.run(_write(store, rows))
    yield root, records


async def _write(store: SqliteOnlineStore, rows: list[WriteRow]) -> None:
    await store.start()
    try:
        await store.write(rows)
    finally:
        await store.close()


def _expected(
    records: Records, ref: str, ids: dict[str, list[Any]], rows: int, now: int
) -> dict[str, list[Any]]:
    """One column, row by row, as the module docstring of app.assemble defines it."""
    view, feature = ref.split(":")
    dtype = VIEWS[view][feature]
    out: dict[str, list[Any]] = {"values": [], "statuses": [], "event_timestamps": []}
    for row in range(rows):
        record = records.get((view, ids[KEY[view]][row]))
        if record is None:
            out["values"].append(None)
            out["statuses"].append("NOT_FOUND")
            out["event_timestamps"].append("1970-01-01T00:00:00Z")
            continue
        event_ts, values = record
        out["event_timestamps"].append(timestamps.format_us(event_ts))
        if TTL_US[view] and now - event_ts > TTL_US[view]:
            status, value = "OUTSIDE_MAX_AGE", None
        elif feature not in values:
            status, value = "NOT_FOUND", None
        elif values[feature] is None:
            status, value = "NULL_VALUE", None
        else:
            status, value = "PRESENT", _shown(dtype, values[feature])
        out["values"].append(value)
        out["statuses"].append(status)
    return out


def _shown(dtype: str, value: Any) -> Any:
    if dtype in ("Float64", "Float32"):
        return shown_float(value)
    if dtype == "Array(Float64)":
        return [None if v is None else shown_float(v) for v in value]
    if dtype == "UnixTimestamp":
        return timestamps.format_us(value)
    return value


def test_fast_path_matches_the_row_by_row_model(repo: tuple[Path, Records]) -> None:
    root, records = repo
    refs = [f"{view}:{feature}" for view, features in VIEWS.items() for feature in features]
    rng = random.Random(11)
    seen_statuses: set[str] = set()
    with SyncApp(root) as app:
        for _ in range(150):
            chosen = rng.sample(refs, rng.randint(1, len(refs)))  # any order, interleaved
            rows = rng.randint(1, 6)
            ids: dict[str, list[Any]] = {}
            if any(KEY[r.split(":")[0]] == "driver_id" for r in chosen):
                ids["driver_id"] = [rng.choice([*DRIVERS, 99]) for _ in range(rows)]
            if any(r.startswith("gamma:") for r in chosen):
                ids["customer_id"] = [rng.choice([*CUSTOMERS, "zz"]) for _ in range(rows)]
            full_names = rng.random() < 0.5
            before = timestamps.now_us()
            response = app.post(
                "/get-online-features",
                json={"entities": ids, "features": chosen, "full_feature_names": full_names},
            )
            after = timestamps.now_us()
            assert response.status_code == 200, response.text
            body = response.json()
            names = [r.replace(":", "__") if full_names else r.split(":")[1] for r in chosen]
            assert body["metadata"]["feature_names"] == [*ids, *names]
            for ref, column in zip(chosen, body["results"][len(ids) :], strict=True):
                # Staleness is decided at the server's now, between before and after.
                want = _expected(records, ref, ids, rows, before)
                if want != _expected(records, ref, ids, rows, after):
                    continue  # a record crossed its ttl during the request
                assert column == want, (ref, ids)
                seen_statuses.update(column["statuses"])
    assert seen_statuses == {"PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE"}
