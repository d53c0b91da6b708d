"""A repo with a precomputed feature service over three views, and its per-view twin."""

from __future__ import annotations

from pathlib import Path

from tests.support import write_parquet, write_repo

VIEWS = """
from datetime import timedelta
from registry import (Array, Bool, Bytes, Entity, FeatureService, FeatureView, Field, FileSource,
                      Float32, Float64, Int64, Json, Map, PushSource, String, UnixTimestamp,
                      ValueType, on_demand_feature_view)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats_source = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",
                          created_timestamp_column="created")
push = PushSource(name="stats_push", batch_source=stats_source)
stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=1), source=push,
                    schema=[Field(name="conv_rate", dtype=Float32),
                            Field(name="trips", dtype=Int64), Field(name="note", dtype=String)])
profile = FeatureView(
    name="profile", entities=[driver], source=FileSource(path="data/profile.parquet",
                                                         timestamp_field="ts"),
    schema=[Field(name="rating", dtype=Float64), Field(name="vehicle", dtype=String),
            Field(name="certified", dtype=Bool), Field(name="scores", dtype=Array(Float64)),
            Field(name="joined", dtype=UnixTimestamp), Field(name="attrs", dtype=Map),
            Field(name="avatar", dtype=Bytes), Field(name="config", dtype=Json)])
recent = FeatureView(name="recent", entities=[driver], ttl=timedelta(hours=1),
                     source=FileSource(path="data/recent.parquet", timestamp_field="ts"),
                     schema=[Field(name="clicks", dtype=Int64), Field(name="trips", dtype=Int64)])


@on_demand_feature_view(sources=[stats], schema=[Field(name="doubled", dtype=Float64)],
                        write_to_online_store=True)
def doubled(inputs):
    return {"doubled": [c * 2 for c in inputs["conv_rate"]]}
"""
SERVICES = """
FEATURES = [stats[["trips", "conv_rate", "note"]], profile, doubled, recent[["clicks"]]]
pre = FeatureService(name="pre", features=FEATURES, precompute_online=True)
plain = FeatureService(name="plain", features=FEATURES)
CLASH = [stats[["trips"]], recent[["trips"]]]
pre_clash = FeatureService(name="pre_clash", features=CLASH, precompute_online=True)
plain_clash = FeatureService(name="plain_clash", features=CLASH)
"""

#: 1001: everything; 1002: nulls, and recent is past its ttl; 1003: no profile record,
#: a NaN; 1004: no recent record, old profile values; no driver 9999.
STATS = """
SELECT d::BIGINT AS driver_id, now() - INTERVAL 2 HOUR AS event_timestamp,
       now() - INTERVAL 2 HOUR AS created,
       CASE d WHEN 1002 THEN NULL WHEN 1003 THEN 'NaN'::FLOAT ELSE (d - 1000) / 10 END::FLOAT
           AS conv_rate,
       (d - 900)::BIGINT AS trips, 'note ' || d AS note
FROM range(1001, 1005) t(d)
"""
PROFILE = """
SELECT * FROM (VALUES
    (1001::BIGINT, 4.5::DOUBLE, 'sedan', true, [1.5, 'inf'::DOUBLE],
     TIMESTAMPTZ '2024-01-02 03:04:05.123+00', MAP {'tier': 'gold'}, '\\x01\\x02'::BLOB,
     '{"x": 1}'),
    (1002, 3.9, 'suv', NULL, [], NULL, NULL, ''::BLOB, NULL),
    (1004, 'NaN'::DOUBLE, NULL, false, NULL, TIMESTAMPTZ '2020-01-01 00:00:00+00', NULL, NULL,
     '[1, 2]')
) AS t(driver_id, rating, vehicle, certified, scores, joined, attrs, avatar, config),
(SELECT now() - INTERVAL 5 DAY AS ts)
"""
RECENT = """
SELECT * FROM (VALUES (1001::BIGINT, 5::BIGINT, 7::BIGINT, now() - INTERVAL 10 MINUTE),
                      (1002, 6, 8, now() - INTERVAL 3 HOUR),
                      (1003, 7, 9, now() - INTERVAL 20 MINUTE))
AS t(driver_id, clicks, trips, ts)
"""


def write_precompute_repo(root: Path, online_store: dict[str, object]) -> Path:
    write_repo(root, VIEWS + SERVICES, online_store=online_store)
    write_parquet(root / "data/stats.parquet", STATS)
    write_parquet(root / "data/profile.parquet", PROFILE)
    write_parquet(root / "data/recent.parquet", RECENT)
    return root
