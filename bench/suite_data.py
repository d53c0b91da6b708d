"""Write the benchmark suite's feature repo (bench/suite_spec.py) with Parquet data.

    python -m bench.suite_data --repo /tmp/suite-repo --redis 127.0.0.1:6390
    python -m bench.suite_data --repo /tmp/small --redis 127.0.0.1:6390 --entities 1000

One Parquet file per view, written by DuckDB: one row per entity, whose event time is a
few minutes before now (well inside the one-day ttl), so ``ladle materialize`` has one
row per entity and view to copy. ``bench_meta.json`` in the repo records what was written
(entity key, id range, feature refs, services, push source columns) for the scripts.
Nothing here talks to the online store: run ``ladle apply`` and ``ladle materialize``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from bench import suite_spec as spec

PROJECT = "ladle_suite"


def feature_store_yaml(redis: str) -> str:
    return f"""\
project: {PROJECT}
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "{redis}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def features_py() -> str:
    names = sorted(
        {"Entity", "FeatureService", "FeatureView", "Field", "FileSource", "ValueType"}
        | {part for kind in spec.KINDS for part in re.findall(r"\w+", kind.dtype)}
        | ({"PushSource"} if any(v.push_source for v in spec.VIEWS) else set())
    )
    lines = [
        '"""The benchmark suite repo, written by bench/suite_data.py; regenerate, do not edit."""',
        "",
        "from datetime import timedelta",
        "",
        "from registry import (",
        *(f"    {name}," for name in names),
        ")",
        "",
        f'{spec.ENTITY} = Entity(name="{spec.ENTITY}", join_keys=["{spec.JOIN_KEY}"], '
        "value_type=ValueType.INT64)",
        "",
    ]
    for view in spec.VIEWS:
        schema = "".join(
            f'        Field(name="{name}", dtype={kind.dtype}),\n' for name, kind in view.features
        )
        source = f"{view.name}_source"
        lines += [
            f"{source} = FileSource(",
            f'    name="{source}",',
            f'    path="data/{view.name}.parquet",',
            '    timestamp_field="event_timestamp",',
            '    created_timestamp_column="created",',
            ")",
        ]
        if view.push_source:
            lines += [
                f'{view.push_source} = PushSource(name="{view.push_source}", '
                f"batch_source={source})",
            ]
        lines += [
            f"{view.name} = FeatureView(",
            f'    name="{view.name}",',
            f"    entities=[{spec.ENTITY}],",
            "    ttl=timedelta(days=1),",
            f"    schema=[\n{schema}    ],",
            f"    source={view.push_source or source},",
            ")",
            "",
        ]
    for service in spec.SERVICES:
        members = ", ".join(service.views or tuple(v.name for v in spec.VIEWS))
        options = "".join(f", {key}={value!r}" for key, value in service.options.items())
        lines.append(
            f'{service.name} = FeatureService(name="{service.name}", features=[{members}]{options})'
        )
    return "\n".join(lines) + "\n"


def write_view(path: Path, view_index: int, view: spec.View, id_start: int, entities: int) -> int:
    """One row per entity; returns the row count."""
    seed = view_index + 1
    columns = ",\n".join(f"    {kind.sql.format(s=seed)} AS {name}" for name, kind in view.features)
    target = str(path).replace("'", "''")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(
            f"""
            COPY (
                WITH base AS (SELECT date_trunc('second', now()) AS t0)
                SELECT d::BIGINT AS {spec.JOIN_KEY},
                       t0 - to_seconds((d * 37 + {seed}) % 3000 + 60) AS event_timestamp,
                       t0 AS created,
                {columns}
                FROM base, range({id_start}, {id_start + entities}) AS ids(d)
            ) TO '{target}' (FORMAT parquet)
            """
        )
        count = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
    finally:
        con.close()
    return int(count[0]) if count else 0


def meta(id_start: int, entities: int) -> dict[str, Any]:
    push = next((v for v in spec.VIEWS if v.push_source), None)
    return {
        "project": PROJECT,
        "entity_key": spec.JOIN_KEY,
        "id_start": id_start,
        "id_count": entities,
        "views": [v.name for v in spec.VIEWS],
        "features": spec.all_refs(),
        "services": [s.name for s in spec.SERVICES],
        "push": {
            "source": push.push_source,
            "view": push.name,
            # name:dtype of every pushed feature, for bench/suite-push.lua
            "columns": ",".join(f"{name}:{kind.dtype}" for name, kind in push.features),
        }
        if push
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, type=Path, help="folder to write (created)")
    parser.add_argument("--redis", required=True, metavar="HOST:PORT", help="online store")
    parser.add_argument("--entities", type=int, default=spec.ENTITIES)
    parser.add_argument("--id-start", type=int, default=spec.ID_START)
    args = parser.parse_args(argv)
    if args.entities < 1:
        parser.error("--entities must be at least 1")
    repo: Path = args.repo
    if repo.exists() and any(repo.iterdir()):
        parser.error(f"{repo} is not empty")
    (repo / "data").mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    (repo / "feature_store.yaml").write_text(feature_store_yaml(args.redis))
    (repo / "features.py").write_text(features_py())
    rows = sum(
        write_view(repo / "data" / f"{view.name}.parquet", i, view, args.id_start, args.entities)
        for i, view in enumerate(spec.VIEWS)
    )
    info = meta(args.id_start, args.entities)
    info["parquet_rows"] = rows
    (repo / "bench_meta.json").write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"dataset: {len(spec.VIEWS)} views x {len(spec.KINDS)} features x {args.entities} "
        f"entities = {rows} Parquet rows in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
