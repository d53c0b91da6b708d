"""Data and checks for bench/materialize.sh: a large Parquet source with Feast-like columns.

    python bench/materialize_data.py generate --repo DIR --redis HOST:PORT --ids 100000 --hours 10
    python bench/materialize_data.py verify --repo DIR --redis HOST:PORT --sample 500
    python bench/materialize_data.py memory --redis HOST:PORT --sample 2000
    python bench/materialize_data.py report [bench/results/<run>]   # latest-materialize

(bench/materialize.sh also uses ``record``, which checks one run and writes it as a JSON
line, and ``pick``, which keeps the least disturbed of several attempts.)

``generate`` writes a feature repo (``feature_store.yaml`` with a Redis online store,
``features.py``) and ``data/driver_stats.parquet`` written by DuckDB: ``--ids`` drivers
(``--id-start`` ..) x ``--hours`` hourly timestamps, the last full UTC hours before now.
The columns follow Feast's ``feast init`` template, so the numbers compare with its
materialize benchmark:

==================  ============================  =====================
column              Parquet type                  declared as
==================  ============================  =====================
driver_id           BIGINT                        join key (Int64)
event_timestamp     TIMESTAMPTZ                   timestamp field
created             TIMESTAMP (naive)             created column
conv_rate           FLOAT                         Float32
acc_rate            FLOAT                         Float32
avg_daily_trips     BIGINT                        Int64
driver_metadata     MAP(VARCHAR, VARCHAR)         Map
driver_config       VARCHAR (JSON text)           Json
driver_profile      STRUCT(name, age VARCHAR)     Map
==================  ============================  =====================

It prints one JSON line: the rows written, the file size, and the materialization window
(``start`` one hour before the oldest row, ``end`` one hour after the newest, both naive
UTC ISO times as ``ladle materialize`` takes them).

``verify`` picks ``--sample`` random ids, computes their newest row with DuckDB straight
from the Parquet file (ties broken by ``created``), reads the same entities' records from
Redis and checks that every stored event time and feature value matches; it prints one
JSON line and exits 1 on a mismatch. ``memory`` prints Redis ``used_memory``, ``DBSIZE``
and the average ``MEMORY USAGE`` of ``--sample`` random keys. ``record`` does both after a
``ladle materialize`` run, adds the figures of GNU ``time -v`` and exits 1 if the run wrote
the wrong number of entities or keys or a record differs. ``report`` renders the
``results.jsonl`` of a run as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import redis

from stores import codec

PROJECT = "ladle_mat_bench"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "latest-materialize"
#: CPU % used by processes outside the benchmark above which a row is marked "(noisy)".
NOISY = 15.0
VIEW = "driver_hourly_stats"
SOURCE = "data/driver_stats.parquet"
#: (name, feature type) in the order the view declares them.
FEATURES = (
    ("conv_rate", "Float32"),
    ("acc_rate", "Float32"),
    ("avg_daily_trips", "Int64"),
    ("driver_metadata", "Map"),
    ("driver_config", "Json"),
    ("driver_profile", "Map"),
)

FEATURE_STORE_YAML = """\
project: {project}
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "{redis}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""

FEATURES_PY = '''\
"""Materialize benchmark repo written by bench/materialize_data.py; regenerate, do not edit."""

from datetime import timedelta

from registry import Entity, FeatureView, Field, FileSource, Float32, Int64, Json, Map, ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="{source}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_hourly_stats = FeatureView(
    name="{view}",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="driver_metadata", dtype=Map),
        Field(name="driver_config", dtype=Json),
        Field(name="driver_profile", dtype=Map),
    ],
    online=True,
    source=driver_stats_source,
)
'''


def _redis_client(address: str) -> redis.Redis:
    host, _, port = address.rpartition(":")
    if int(port) == 6379:
        raise SystemExit("refusing to use port 6379 (the shared Redis)")
    return redis.Redis(host=host or "127.0.0.1", port=int(port), socket_timeout=30)


def write_parquet(path: Path, id_start: int, ids: int, hours: int) -> dict[str, Any]:
    """Write the source file; return its row count and window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path).replace("'", "''")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute("SELECT setseed(0.42)")
        # Hours h = 1..hours before the current full hour; created = event time + a few
        # minutes, as a naive timestamp (Feast's template stores it without a zone).
        con.execute(
            f"""
            COPY (
                WITH base AS (SELECT date_trunc('hour', now()) AS t0)
                SELECT d::BIGINT AS driver_id,
                       t0 - to_hours(h) AS event_timestamp,
                       (t0 - to_hours(h) + to_minutes(5))::TIMESTAMP AS created,
                       random()::FLOAT AS conv_rate,
                       random()::FLOAT AS acc_rate,
                       (random() * 1000)::BIGINT AS avg_daily_trips,
                       MAP {{
                           'vehicle_type': ['bike', 'sedan', 'suv', 'van'][d % 4 + 1],
                           'rating': '4.' || (d % 10)::VARCHAR
                       }} AS driver_metadata,
                       '{{"max_distance_km": ' || ((d * 7 + h) % 200)::VARCHAR || '}}'
                           AS driver_config,
                       {{'name': 'driver_' || d::VARCHAR, 'age': (20 + d % 40)::VARCHAR}}
                           AS driver_profile
                FROM base,
                     range({id_start}, {id_start + ids}) AS drivers(d),
                     range(1, {hours + 1}) AS hours(h)
                ORDER BY event_timestamp, driver_id
            ) TO '{target}' (FORMAT parquet)
            """
        )
        # Times as naive UTC text (TimeZone is UTC); fetching TIMESTAMPTZ would need pytz.
        fmt = "'%Y-%m-%dT%H:%M:%S'"
        row = con.execute(
            f"SELECT count(*), count(DISTINCT driver_id), "
            f"strftime(min(event_timestamp), {fmt}), strftime(max(event_timestamp), {fmt}), "
            f"strftime(min(event_timestamp) - INTERVAL 1 HOUR, {fmt}), "
            f"strftime(max(event_timestamp) + INTERVAL 1 HOUR, {fmt}) "
            f"FROM read_parquet('{target}')"
        ).fetchone()
        types = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{target}')").fetchall()
    finally:
        con.close()
    assert row is not None
    count, entities, oldest, newest, start, end = row
    return {
        "rows": int(count),
        "entities": int(entities),
        "bytes": path.stat().st_size,
        "oldest": oldest,
        "newest": newest,
        # one hour of slack either side, as naive UTC for `ladle materialize`
        "start": start,
        "end": end,
        "columns": {str(name): str(dtype) for name, dtype, *_ in types},
    }


def cmd_generate(args: argparse.Namespace) -> int:
    repo: Path = args.repo
    if repo.exists() and any(repo.iterdir()):
        print(f"{repo} is not empty", file=sys.stderr)
        return 1
    (repo / "data").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    (repo / "feature_store.yaml").write_text(
        FEATURE_STORE_YAML.format(project=PROJECT, redis=args.redis)
    )
    (repo / "features.py").write_text(FEATURES_PY.format(source=SOURCE, view=VIEW))
    meta = write_parquet(repo / SOURCE, args.id_start, args.ids, args.hours)
    meta.update(project=PROJECT, view=VIEW, id_start=args.id_start, ids=args.ids, hours=args.hours)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    (repo / "bench_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))
    return 0


def verify(repo: Path, address: str, sample: int, seed: int = 7) -> dict[str, Any]:
    """Compare ``sample`` random entities' Redis records with their newest offline rows."""
    meta = json.loads((repo / "bench_meta.json").read_text())
    rng = random.Random(seed)
    population = range(meta["id_start"], meta["id_start"] + meta["ids"])
    ids = sorted(rng.sample(population, min(sample, len(population))))
    target = str(repo / SOURCE).replace("'", "''")
    names = [name for name, _ in FEATURES]
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        id_list = ", ".join(str(i) for i in ids)
        rows = con.execute(
            f"SELECT driver_id, epoch_us(event_timestamp), {', '.join(names)} "
            f"FROM read_parquet('{target}') WHERE driver_id IN ({id_list}) "
            "QUALIFY row_number() OVER (PARTITION BY driver_id "
            "ORDER BY event_timestamp DESC, created DESC) = 1 ORDER BY driver_id"
        ).fetchall()
    finally:
        con.close()
    normalizers = [codec.normalizer(dtype) for _, dtype in FEATURES]
    client = _redis_client(address)
    try:
        pipe = client.pipeline(transaction=False)
        for row in rows:
            pipe.hget(f"{meta['project']}:driver_id={row[0]}", meta["view"])
        blobs = pipe.execute()
    finally:
        client.close()
    problems: list[str] = []
    for row, blob in zip(rows, blobs, strict=True):
        if blob is None:
            problems.append(f"driver_id={row[0]}: no record in Redis")
            continue
        event_us, values = codec.decode_record(blob)
        if event_us != row[1]:
            problems.append(f"driver_id={row[0]}: event time {event_us} != newest {row[1]}")
        for name, normalize, raw in zip(names, normalizers, row[2:], strict=True):
            expected = normalize(raw)
            if values.get(name) != expected:
                problems.append(f"driver_id={row[0]} {name}: {values.get(name)!r} != {expected!r}")
    ok = not problems and len(rows) == len(ids)
    return {"checked": len(rows), "sampled": len(ids), "ok": ok, "problems": problems[:10]}


def redis_memory(address: str, sample: int) -> dict[str, Any]:
    """used_memory, DBSIZE and the average MEMORY USAGE of ``sample`` random keys."""
    client = _redis_client(address)
    try:
        info = client.info("memory")
        keys_total = int(client.dbsize())
        pipe = client.pipeline(transaction=False)
        for _ in range(sample if keys_total else 0):
            pipe.randomkey()
        keys = [k for k in pipe.execute() if k is not None]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        usage = [int(u) for u in pipe.execute() if u is not None]
        fields = int(client.hlen(keys[0])) if keys else 0
    finally:
        client.close()
    return {
        "used_memory": int(info["used_memory"]),
        "used_memory_dataset": int(info.get("used_memory_dataset", 0)),
        "dbsize": keys_total,
        "keys_sampled": len(usage),
        "avg_memory_usage": round(sum(usage) / len(usage), 1) if usage else 0.0,
        "hash_fields": fields,
    }


def parse_time_v(text: str) -> dict[str, float]:
    """The figures we use from GNU time's ``-v`` report."""
    wanted = {
        "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall_s",
        "Maximum resident set size (kbytes)": "max_rss_kb",
        "User time (seconds)": "user_s",
        "System time (seconds)": "sys_s",
        "Exit status": "exit_status",
    }
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().rpartition(": ")
        key = wanted.get(name)
        if not sep or key is None:
            continue
        if key == "wall_s":
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            found[key] = seconds
        else:
            found[key] = float(value)
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise ValueError(f"GNU time report lacks {missing}")
    return found


def cmd_record(args: argparse.Namespace) -> int:
    meta = json.loads((args.repo / "bench_meta.json").read_text())
    timing = parse_time_v(args.time_file.read_text())
    log = args.log.read_text()
    match = re.search(r"(\d+) entities read, (\d+) written", log)
    memory = redis_memory(args.redis, args.memory_sample)
    check = verify(args.repo, args.redis, args.verify_sample)
    wall = timing["wall_s"]
    ladle_cpu_s = timing["user_s"] + timing["sys_s"]
    host_pct = 100 * args.host_busy_s / wall if wall else 0.0
    redis_pct = 100 * args.redis_cpu_s / wall if wall else 0.0
    ladle_pct = 100 * ladle_cpu_s / wall if wall else 0.0
    keys = memory["dbsize"]
    result = {
        "label": args.label,
        "run": args.run_index,
        "rows": meta["rows"],
        "ids": meta["ids"],
        "hours": meta["hours"],
        "entities": meta["entities"],
        "parquet_bytes": meta["bytes"],
        "window": [meta["start"], meta["end"]],
        "exit_status": int(timing["exit_status"]),
        "entities_read": int(match.group(1)) if match else None,
        "written": int(match.group(2)) if match else None,
        "wall_s": wall,
        "rows_per_s": round(meta["rows"] / wall, 1) if wall else 0.0,
        "entities_per_s": round(meta["entities"] / wall, 1) if wall else 0.0,
        "max_rss_mib": round(timing["max_rss_kb"] / 1024, 1),
        "cpu_pct": {
            "ladle": round(ladle_pct, 1),
            "redis": round(redis_pct, 1),
            "other": round(max(0.0, host_pct - ladle_pct - redis_pct), 1),
        },
        "ladle_cpu_s": round(ladle_cpu_s, 2),
        "redis_cpu_s": round(args.redis_cpu_s, 2),
        "redis_baseline_used_memory": args.baseline_used_memory,
        **memory,
        "bytes_per_entity": round(memory["used_memory"] / keys, 1) if keys else None,
        "bytes_per_entity_over_baseline": (
            round((memory["used_memory"] - args.baseline_used_memory) / keys, 1) if keys else None
        ),
        "verify": check,
    }
    with args.out.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(
        f"{args.label} run {args.run_index}: {meta['rows']:,} rows in {wall:.2f} s "
        f"({result['rows_per_s']:,.0f} rows/s, {result['entities_per_s']:,.0f} entities/s), "
        f"peak RSS {result['max_rss_mib']:.0f} MiB, {keys:,} keys, "
        f"{result['bytes_per_entity_over_baseline']} B/entity over the empty server; "
        f"CPU % ladle {ladle_pct:.0f} redis {redis_pct:.0f} other "
        f"{result['cpu_pct']['other']:.0f}; verify {'ok' if check['ok'] else 'FAILED'} "
        f"({check['checked']} entities)",
        file=sys.stderr,
    )
    problems = []
    if result["exit_status"] != 0:
        problems.append(f"ladle materialize exited with {result['exit_status']}")
    if result["written"] != meta["entities"] or keys != meta["entities"]:
        problems.append(
            f"expected {meta['entities']} entities written and keys, got "
            f"{result['written']} written and {keys} keys"
        )
    if not check["ok"]:
        problems.append(f"stored records differ from the newest offline rows: {check['problems']}")
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(round(result["cpu_pct"]["other"]))  # for materialize.sh's RETRY_NOISY
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    """Append the least disturbed of several attempts of one run to results.jsonl."""
    attempts = [json.loads(p.read_text().splitlines()[0]) for p in args.attempts]
    best = min(attempts, key=lambda r: float(r["cpu_pct"]["other"]))
    best["attempts"] = len(attempts)
    with args.results.open("a") as f:
        f.write(json.dumps(best) + "\n")
    return 0


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| source rows | ids x hours | Parquet MB | run | wall s | input rows/s | entities/s "
        "| peak RSS MiB | Redis used_memory MB | DBSIZE | B/entity (over empty) "
        "| avg MEMORY USAGE B | CPU % ladle / redis / other |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        cpu = r["cpu_pct"]
        noisy = " (noisy)" if cpu["other"] > NOISY else ""
        lines.append(
            f"| {r['rows']:,} | {r['ids']:,} x {r['hours']} | {r['parquet_bytes'] / 1e6:.1f} "
            f"| {r['run']} | {r['wall_s']:.2f} | {r['rows_per_s']:,.0f} "
            f"| {r['entities_per_s']:,.0f} | {r['max_rss_mib']:,.0f} "
            f"| {r['used_memory'] / 1e6:.1f} | {r['dbsize']:,} "
            f"| {r['bytes_per_entity']:.0f} ({r['bytes_per_entity_over_baseline']:.0f}) "
            f"| {r['avg_memory_usage']:.0f} "
            f"| {cpu['ladle']:.0f} / {cpu['redis']:.0f} / {cpu['other']:.0f}{noisy} |"
        )
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    path: Path = args.results
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.exists():
        print(
            f"report: {path} does not exist; run `bash bench/materialize.sh` first", file=sys.stderr
        )
        return 1
    results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not results:
        print(f"report: no results in {path}", file=sys.stderr)
        return 1
    print(render(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the repo and its Parquet source")
    gen.add_argument("--repo", required=True, type=Path)
    gen.add_argument("--redis", required=True, metavar="HOST:PORT")
    gen.add_argument("--ids", type=int, default=100_000)
    gen.add_argument("--hours", type=int, default=10)
    gen.add_argument("--id-start", type=int, default=1001)
    gen.set_defaults(run=cmd_generate)
    ver = sub.add_parser("verify", help="compare sampled Redis records with the newest rows")
    ver.add_argument("--repo", required=True, type=Path)
    ver.add_argument("--redis", required=True, metavar="HOST:PORT")
    ver.add_argument("--sample", type=int, default=500)
    ver.add_argument("--seed", type=int, default=7)
    ver.set_defaults(run=cmd_verify)
    mem = sub.add_parser("memory", help="used_memory, DBSIZE, average MEMORY USAGE of random keys")
    mem.add_argument("--redis", required=True, metavar="HOST:PORT")
    mem.add_argument("--sample", type=int, default=2000)
    mem.set_defaults(run=cmd_memory)
    rec = sub.add_parser("record", help="check one materialize run and write it as JSON")
    rec.add_argument("--out", required=True, type=Path, help="file to append the JSON line to")
    rec.add_argument("--repo", required=True, type=Path)
    rec.add_argument("--redis", required=True, metavar="HOST:PORT")
    rec.add_argument("--time-file", required=True, type=Path, help="GNU time -v -o output")
    rec.add_argument("--log", required=True, type=Path, help="ladle materialize output")
    rec.add_argument("--baseline-used-memory", required=True, type=int)
    rec.add_argument("--redis-cpu-s", required=True, type=float)
    rec.add_argument("--host-busy-s", required=True, type=float)
    rec.add_argument("--label", default="")
    rec.add_argument("--run", dest="run_index", type=int, default=1)
    rec.add_argument("--memory-sample", type=int, default=2000)
    rec.add_argument("--verify-sample", type=int, default=500)
    rec.set_defaults(run=cmd_record)
    pick = sub.add_parser("pick", help="append the least disturbed attempt to results.jsonl")
    pick.add_argument("results", type=Path)
    pick.add_argument("attempts", type=Path, nargs="+")
    pick.set_defaults(run=cmd_pick)
    rep = sub.add_parser("report", help="render results.jsonl as a markdown table")
    rep.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    rep.set_defaults(run=cmd_report)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


def cmd_verify(args: argparse.Namespace) -> int:
    check = verify(args.repo, args.redis, args.sample, args.seed)
    print(json.dumps(check))
    return 0 if check["ok"] else 1


def cmd_memory(args: argparse.Namespace) -> int:
    print(json.dumps(redis_memory(args.redis, args.sample)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
