"""Write a benchmark feature repo: feature_store.yaml, features.py and Parquet data.

    python bench/dataset.py --repo /tmp/bench-repo --redis 127.0.0.1:6390
    python bench/dataset.py --repo /tmp/big --redis 127.0.0.1:6390 --entities 100000 --views 4

The repo has one entity (``driver``, join key ``driver_id``, Int64) and ``--views``
feature views. Every view has the same three features (conv_rate Float32, acc_rate
Float32, avg_daily_trips Int64), a ttl of one day and its own Parquet file written by
DuckDB. The first view is ``driver_hourly_stats`` (the name the Feast reference load
profile asks for); the others are ``driver_hourly_stats_2``, ``driver_hourly_stats_3``...

Entity ids are ``--id-start`` .. ``--id-start + --entities - 1`` (default 1001..2000).
Each entity gets ``--hours`` rows, one per hour going back from "now" (minus a few
minutes that differ per entity), so the newest row is always less than an hour old and
well inside the ttl. A feature service ``bench_all`` lists every view.

Nothing here talks to the online store; run ``ladle apply`` and ``ladle materialize``
afterwards (bench/run.sh does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

FEATURES = (("conv_rate", "Float32"), ("acc_rate", "Float32"), ("avg_daily_trips", "Int64"))
FIRST_VIEW = "driver_hourly_stats"
PROJECT = "ladle_bench"


def view_names(count: int) -> list[str]:
    return [FIRST_VIEW] + [f"{FIRST_VIEW}_{i}" for i in range(2, count + 1)]


def feature_store_yaml(online_store: str) -> str:
    return f"""\
project: {PROJECT}
registry: data/registry.db
provider: local
{online_store}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def redis_store(connection_string: str) -> str:
    return f'online_store:\n  type: redis\n  connection_string: "{connection_string}"'


def sqlite_store(path: str) -> str:
    return f'online_store:\n  type: sqlite\n  path: "{path}"'


def features_py(views: list[str]) -> str:
    lines = [
        '"""Benchmark repo written by bench/dataset.py; regenerate rather than edit."""',
        "",
        "from datetime import timedelta",
        "from typing import Any",
        "",
        "from registry import (Entity, FeatureService, FeatureView, Field, FileSource, "
        "Float32, Float64, Int64, ValueType, on_demand_feature_view)",
        "",
        'driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)',
        "",
    ]
    for index, view in enumerate(views):
        schema = ", ".join(f'Field(name="{name}", dtype={dtype})' for name, dtype in FEATURES)
        lines += [
            f"source_{index} = FileSource(",
            f'    name="{view}_source",',
            f'    path="data/{view}.parquet",',
            '    timestamp_field="event_timestamp",',
            '    created_timestamp_column="created",',
            ")",
            f"view_{index} = FeatureView(",
            f'    name="{view}",',
            "    entities=[driver],",
            "    ttl=timedelta(days=1),",
            f"    schema=[{schema}],",
            "    online=True,",
            f"    source=source_{index},",
            ")",
            "",
        ]
    # A simple on-demand view, to measure what a transformation adds to a request.
    lines += [
        "",
        "@on_demand_feature_view(",
        "    sources=[view_0],",
        '    schema=[Field(name="conv_rate_doubled", dtype=Float64)],',
        ")",
        "def conv_rate_transform(inputs: dict[str, Any]) -> dict[str, Any]:",
        '    return {"conv_rate_doubled": [rate * 2 for rate in inputs["conv_rate"]]}',
        "",
    ]
    members = ", ".join(f"view_{i}" for i in range(len(views)))
    lines.append(f'bench_all = FeatureService(name="bench_all", features=[{members}])')
    return "\n".join(lines) + "\n"


def write_view_data(path: Path, id_start: int, entities: int, hours: int, seed: int) -> int:
    """One Parquet file; returns its row count."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(f"SELECT setseed({seed / 1000.0})")
        target = str(path).replace("'", "''")
        con.execute(
            f"""
            COPY (
                WITH base AS (SELECT date_trunc('second', now()) AS t0)
                SELECT d::BIGINT AS driver_id,
                       t0 - to_hours(h) - to_seconds((d * 37 + {seed}) % 3000 + 60)
                           AS event_timestamp,
                       t0 AS created,
                       random()::FLOAT AS conv_rate,
                       random()::FLOAT AS acc_rate,
                       (random() * 1000)::BIGINT AS avg_daily_trips
                FROM base,
                     range({id_start}, {id_start + entities}) AS drivers(d),
                     range(0, {hours}) AS hours(h)
                ORDER BY event_timestamp, d
            ) TO '{target}' (FORMAT parquet)
            """
        )
        count = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
    finally:
        con.close()
    return int(count[0]) if count else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, type=Path, help="folder to write (created)")
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument(
        "--redis",
        metavar="HOST:PORT",
        help="online store: Redis connection string, e.g. 127.0.0.1:6390",
    )
    store.add_argument("--sqlite", metavar="PATH", help="online store: SQLite file instead")
    parser.add_argument(
        "--entities", type=int, default=1000, help="number of drivers (default 1000)"
    )
    parser.add_argument("--id-start", type=int, default=1001, help="first driver id (default 1001)")
    parser.add_argument(
        "--views", type=int, default=1, help="number of feature views, 3 features each (default 1)"
    )
    parser.add_argument(
        "--hours",
        type=int,
        default=1,
        help="rows per driver and view, one per hour back from now (default 1)",
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)

    if args.entities < 1 or args.views < 1 or args.hours < 1:
        parser.error("--entities, --views and --hours must be at least 1")
    repo: Path = args.repo
    if repo.exists() and any(repo.iterdir()) and not args.force:
        parser.error(f"{repo} is not empty (use --force)")
    (repo / "data").mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    views = view_names(args.views)
    online = redis_store(args.redis) if args.redis else sqlite_store(args.sqlite)
    (repo / "feature_store.yaml").write_text(feature_store_yaml(online))
    (repo / "features.py").write_text(features_py(views))
    rows = 0
    for index, view in enumerate(views):
        rows += write_view_data(
            repo / "data" / f"{view}.parquet",
            args.id_start,
            args.entities,
            args.hours,
            seed=index + 1,
        )
    meta = {
        "project": PROJECT,
        "entity_key": "driver_id",
        "id_start": args.id_start,
        "id_count": args.entities,
        "views": views,
        "features": [f"{view}:{name}" for view in views for name, _ in FEATURES],
        "hours": args.hours,
        "parquet_rows": rows,
    }
    (repo / "bench_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"dataset: {repo}: {len(views)} view(s) x {args.entities} drivers "
        f"({args.id_start}..{args.id_start + args.entities - 1}) x {args.hours} hour(s) = "
        f"{rows} Parquet rows in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
