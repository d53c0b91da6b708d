"""Render bench/run.sh and bench/push.sh results as one markdown table.

    python bench/report.py                           # bench/results/latest/results.jsonl
    python bench/report.py bench/results/<run>       # a run folder
    python bench/report.py path/to/results.jsonl     # or a JSONL file
    python bench/report.py bench/results/latest-push # the latest bench/push.sh run

(run.sh also uses two helper modes: ``--merge`` adds its fields and CPU figures to one
wrk result, ``--pick`` appends the least disturbed of several attempts to results.jsonl.)

Each input line is the JSON summary that bench/load-profile.lua's done() writes, plus
the fields run.sh adds (endpoint, conns, threads, workers, cpu_pct). "vs floor" is the
scenario's RPS divided by the RPS of POST /floor at the same connections and rows in the
same file: the share of the bare-framework throughput that the real endpoint keeps.
CPU is % of one core (the machine total is 100 x cores): the server (all hypercorn
processes), redis-server, wrk, and "other" = everything else on the machine during the
run (from /proc/stat); rows where other processes took more than 15% are marked noisy.
If a scenario was measured more than once, the last line wins.

A file with POST /push lines (bench/push.sh, bench/push-load-profile.lua) gets the write
table instead: rows per push, rows/s, the rows Redis really wrote during the measured
run (the ``INFO commandstats`` HSET delta; Ladle's write script does one HSET per stored
row), that count over the rows of the pushes wrk completed, server CPU ms per request, and
RPS vs the POST /floor run at the same connections (a 1-row /get-online-features body).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FLOOR = "/floor"
#: CPU % used by processes outside the benchmark above which a row is marked "(noisy)".
NOISY = 15.0
DEFAULT = Path(__file__).resolve().parent / "results" / "latest" / "results.jsonl"


def load(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "results.jsonl"
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            endpoint = r.get("endpoint") or r.get("label", "?")
            rows[(endpoint, int(r.get("conns", 0)), int(r["rows"]))] = r
    return list(rows.values())


def errors_text(errors: dict[str, int]) -> str:
    total = sum(errors.values())
    if not total:
        return "0"
    parts = ", ".join(f"{k} {v}" for k, v in errors.items() if v)
    return f"**{total}** ({parts})"


def render(results: list[dict[str, Any]]) -> str:
    floors = {(r["conns"], r["rows"]): r["rps"] for r in results if r.get("endpoint") == FLOOR}

    def order(r: dict[str, Any]) -> tuple[int, int, int, str]:
        return (r["rows"], r.get("conns", 0), r.get("endpoint") == FLOOR, r.get("endpoint", ""))

    lines = [
        "| scenario | conns | rows | RPS | p50 ms | p99 ms | errors | RPS vs floor "
        "| CPU % server / redis / wrk / other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=order):
        floor = floors.get((r.get("conns"), r["rows"]))
        ratio = f"{r['rps'] / floor:.2f}" if floor else "n/a"
        lines.append(
            f"| POST {r.get('endpoint', r.get('label'))} | {r.get('conns', '?')} | {r['rows']} "
            f"| {r['rps']:,.0f} | {r['lat_ms']['p50']:.2f} | {r['lat_ms']['p99']:.2f} "
            f"| {errors_text(r['errors'])} | {ratio} | {cpu_text(r)} |"
        )
    return "\n".join(lines)


def cpu_text(r: dict[str, Any]) -> str:
    cpu = r.get("cpu_pct")
    if not cpu:
        return ""
    other = other_pct(cpu)
    return f"{cpu['server']:.0f} / {cpu['redis']:.0f} / {cpu['wrk']:.0f} / {other:.0f}" + (
        " (noisy)" if other > NOISY else ""
    )


def render_push(results: list[dict[str, Any]]) -> str:
    floors = {r["conns"]: r["rps"] for r in results if r.get("endpoint") == FLOOR}

    def order(r: dict[str, Any]) -> tuple[bool, int, int]:
        return (r.get("endpoint") == FLOOR, r["rows"], r.get("conns", 0))

    lines = [
        "| scenario | rows/push | conns | RPS | rows/s | p50 ms | p99 ms | errors "
        "| rows written (HSET) | written / pushed | server CPU ms/req | RPS vs floor "
        "| CPU % server / redis / wrk / other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=order):
        is_floor = r.get("endpoint") == FLOOR
        floor = floors.get(r.get("conns"))
        ratio = f"{r['rps'] / floor:.2f}" if floor else "n/a"
        cpu = r.get("cpu_pct")
        ms = f"{cpu['server'] * 10 / r['rps']:.2f}" if cpu and r["rps"] else ""
        if is_floor:
            name, rows, rows_s, written, share = "POST /floor (1-row get body)", "", "", "", ""
        else:
            name = f"POST /push to={r.get('to', '?')}"
            rows = str(r["rows"])
            rows_s = f"{r.get('rows_per_s', r['rps'] * r['rows']):,.0f}"
            hset = int(r.get("hset", 0))
            ok = r["requests"] - r["errors"].get("non2xx", 0)
            pushed = ok * r["rows"]
            written = f"{hset:,}"
            share = f"{hset / pushed:.3f}" if pushed else "n/a"
        lines.append(
            f"| {name} | {rows} | {r.get('conns', '?')} | {r['rps']:,.0f} | {rows_s} "
            f"| {r['lat_ms']['p50']:.2f} | {r['lat_ms']['p99']:.2f} "
            f"| {errors_text(r['errors'])} | {written} | {share} | {ms} | {ratio} "
            f"| {cpu_text(r)} |"
        )
    return "\n".join(lines)


def other_pct(cpu: dict[str, Any]) -> float:
    """CPU % taken by processes that are not part of the benchmark."""
    return max(0.0, float(cpu["host"] - cpu["server"] - cpu["redis"] - cpu["wrk"]))


def cpu_figures(sample: str) -> dict[str, Any]:
    """run.sh's CSV sample: t0,t1,clk_tck,server0,server1,redis0,redis1,wrk_s0,wrk_s1,
    host0,host1,worker0s(a:b:..),worker1s -> CPU % of one core for each party."""
    f = sample.split(",")
    wall = float(f[1]) - float(f[0])
    tck = float(f[2])

    def pct(a: str, b: str, scale: float) -> float:
        return round(100 * (float(b) - float(a)) / scale / wall, 1)

    workers0 = [w for w in f[11].split(":") if w]
    workers1 = [w for w in f[12].split(":") if w]
    return {
        "server": pct(f[3], f[4], tck),
        "redis": pct(f[5], f[6], tck),
        "wrk": pct(f[7], f[8], 1.0),
        "host": pct(f[9], f[10], tck),
        # per hypercorn worker: how the connections ended up spread over the workers
        "workers": sorted(
            (pct(a, b, tck) for a, b in zip(workers0, workers1, strict=True)), reverse=True
        ),
    }


def merge(src: Path, dst: Path, fields: list[str]) -> int:
    r = json.loads(src.read_text().splitlines()[0])
    for item in fields:
        key, _, value = item.partition("=")
        if key == "cpu":
            r["cpu_pct"] = cpu_figures(value)
        else:
            r[key] = int(value) if value.lstrip("-").isdigit() else value
    dst.write_text(json.dumps(r) + "\n")
    cpu = r["cpu_pct"]
    bad = sum(r["errors"].values())
    print(
        f"{r['label']:<34} {r['rps']:>9.1f} rps  p50 {r['lat_ms']['p50']:7.2f} ms  "
        f"p99 {r['lat_ms']['p99']:7.2f} ms  errors {bad}  CPU% server {cpu['server']:.0f} "
        f"(workers {'/'.join(f'{w:.0f}' for w in cpu['workers'])}) redis {cpu['redis']:.0f} "
        f"wrk {cpu['wrk']:.0f} other {other_pct(cpu):.0f}" + ("   <-- ERRORS" if bad else ""),
        file=sys.stderr,
    )
    print(round(other_pct(cpu)))
    return 0


def pick(results: Path, attempts: list[Path]) -> int:
    loaded = [json.loads(p.read_text()) for p in attempts]
    best = min(loaded, key=lambda r: other_pct(r["cpu_pct"]))
    best["attempts"] = len(loaded)
    with results.open("a") as f:
        f.write(json.dumps(best) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--merge":
        return merge(Path(argv[2]), Path(argv[3]), argv[4:])
    if len(argv) > 1 and argv[1] == "--pick":
        return pick(Path(argv[2]), [Path(a) for a in argv[3:]])
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    if not path.exists():
        print(f"report: {path} does not exist; run `bash bench/run.sh` first", file=sys.stderr)
        return 1
    results = load(path)
    if not results:
        print(f"report: no results in {path}", file=sys.stderr)
        return 1
    if any(r.get("endpoint") == "/push" for r in results):
        print(render_push(results))
    else:
        print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
