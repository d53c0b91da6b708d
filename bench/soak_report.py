"""Record and report bench/soak.sh intervals: throughput, p99, errors and RSS over time.

    python -m bench.soak_report record SOAK.jsonl --interval 3 --t 90 --reads R.json \
        --pushes P.json --rss "parent:123:81234 worker:124:90112 redis:99:20480" --log-errors 0
    python -m bench.soak_report report RUN_DIR [--warmup-intervals 2] [--growth-mib 8] \
        [--json OUT]

``record`` appends one interval (the two wrk result lines of bench/suite-profile.lua and
bench/suite-push.lua, the RSS of every server process and of redis-server in KiB, and how
many error lines the server log holds so far) and prints it as a table row.

``report`` prints the table over time and a summary, and writes the JSON. It flags:

- any non-2xx response, 5xx response or socket error;
- a change in the server's processes (a worker that died or was replaced);
- error lines (tracebacks) in the server log;
- RSS growth after warm-up: for each process, the last sample minus the sample that
  ends the warm-up (the first ``--warmup-intervals`` intervals), above ``--growth-mib``.
  The least-squares slope from that sample on is shown as MiB per 10 minutes.

The exit status is 2 when something is flagged, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MIB = 1024.0  # KiB per MiB


def _wrk(path: Path) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(path.read_text().splitlines()[0])
    errors = run["errors"]
    return {
        "requests": run["requests"],
        "rps": run["rps"],
        "p50_ms": run["lat_ms"]["p50"],
        "p99_ms": run["lat_ms"]["p99"],
        "max_ms": run["lat_ms"]["max"],
        "non2xx": errors["non2xx"],
        "status_4xx": run["status"]["4xx"],
        "status_5xx": run["status"]["5xx"],
        "socket_errors": sum(v for k, v in errors.items() if k != "non2xx"),
    }


def _processes(text: str) -> list[dict[str, Any]]:
    out = []
    for item in text.split():
        role, pid, kib = item.split(":")
        out.append({"role": role, "pid": int(pid), "rss_kib": int(kib)})
    return out


def record(args: argparse.Namespace) -> int:
    sample = {
        "interval": args.interval,
        "t_s": args.t,
        "reads": _wrk(args.reads),
        "pushes": _wrk(args.pushes),
        "processes": _processes(args.rss),
        "log_errors": args.log_errors,
    }
    with args.out.open("a") as out:
        out.write(json.dumps(sample) + "\n")
    if args.interval == 1:
        print(HEADER, file=sys.stderr)
    print(row(sample), file=sys.stderr)
    return 0


HEADER = (
    "| t (s) | reads RPS | reads p99 ms | pushes RPS | pushes p99 ms | non-2xx | 5xx "
    "| socket errors | RSS MiB parent | RSS MiB workers | RSS MiB redis |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
)


def _rss(sample: dict[str, Any], role: str) -> list[float]:
    return [p["rss_kib"] / MIB for p in sample["processes"] if p["role"] == role]


def row(sample: dict[str, Any]) -> str:
    reads, pushes = sample["reads"], sample["pushes"]
    non2xx = reads["non2xx"] + pushes["non2xx"]
    fivexx = max(reads["status_5xx"], 0) + max(pushes["status_5xx"], 0)
    sockets = reads["socket_errors"] + pushes["socket_errors"]
    workers = " / ".join(f"{v:.1f}" for v in _rss(sample, "worker"))
    parent = " / ".join(f"{v:.1f}" for v in _rss(sample, "parent"))
    redis = " / ".join(f"{v:.1f}" for v in _rss(sample, "redis"))
    return (
        f"| {sample['t_s']} | {reads['rps']:,.0f} | {reads['p99_ms']:.2f} "
        f"| {pushes['rps']:,.0f} | {pushes['p99_ms']:.2f} | {non2xx} | {fivexx} | {sockets} "
        f"| {parent} | {workers} | {redis} |"
    )


def _slope_per_10min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 600


def growth(
    samples: list[dict[str, Any]], warmup_intervals: int, limit_mib: float
) -> list[dict[str, Any]]:
    """Per process (role + pid): RSS after warm-up, at the end, growth and slope."""
    series: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for sample in samples:
        for proc in sample["processes"]:
            key = (proc["role"], proc["pid"])
            point = (sample["interval"], sample["t_s"], proc["rss_kib"] / MIB)
            series.setdefault(key, []).append(point)
    out = []
    for (role, pid), triples in series.items():
        warm = [(t, v) for i, t, v in triples if i <= warmup_intervals]
        after = [(t, v) for i, t, v in triples if i > warmup_intervals]
        points = warm + after
        base = warm[-1] if warm else points[0]
        end = points[-1]
        grew = end[1] - base[1]
        out.append(
            {
                "role": role,
                "pid": pid,
                "first_mib": round(points[0][1], 1),
                "after_warmup_mib": round(base[1], 1),
                "last_mib": round(end[1], 1),
                "max_mib": round(max(v for _, v in points), 1),
                "growth_after_warmup_mib": round(grew, 1),
                "slope_mib_per_10min": round(_slope_per_10min([base, *after]), 2),
                "samples_after_warmup": len(after),
                "flagged": bool(after) and grew > limit_mib,
            }
        )
    return out


def report(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    lines = (folder / "soak.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    if not samples:
        print(f"soak_report: no intervals in {folder}/soak.jsonl", file=sys.stderr)
        return 1
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    totals: dict[str, int] = {}
    for kind in ("reads", "pushes"):
        for field in ("requests", "non2xx", "status_4xx", "status_5xx", "socket_errors"):
            totals[f"{kind}_{field}"] = sum(max(s[kind][field], 0) for s in samples)
    rss = growth(samples, args.warmup_intervals, args.growth_mib)
    pid_sets = [sorted((p["role"], p["pid"]) for p in s["processes"]) for s in samples]
    processes_changed = any(pids != pid_sets[0] for pids in pid_sets)
    log_errors = samples[-1]["log_errors"]
    flags = []
    for kind in ("reads", "pushes"):
        bad = {
            f: totals[f"{kind}_{f}"]
            for f in ("non2xx", "status_5xx", "socket_errors")
            if totals[f"{kind}_{f}"]
        }
        if bad:
            flags.append(f"{kind}: {', '.join(f'{k} {v}' for k, v in bad.items())}")
    if processes_changed:
        flags.append("the server's processes changed during the soak (a worker died?)")
    if log_errors:
        flags.append(f"{log_errors} error line(s) in the server log")
    for proc in rss:
        if proc["flagged"]:
            flags.append(
                f"RSS of {proc['role']} {proc['pid']} grew {proc['growth_after_warmup_mib']} MiB "
                f"after warm-up (limit {args.growth_mib} MiB)"
            )

    print(HEADER)
    for sample in samples:
        print(row(sample))
    print()
    print(
        f"Requests: {totals['reads_requests']:,} reads, {totals['pushes_requests']:,} pushes; "
        f"non-2xx {totals['reads_non2xx'] + totals['pushes_non2xx']}, "
        f"5xx {totals['reads_status_5xx'] + totals['pushes_status_5xx']}, "
        f"socket errors {totals['reads_socket_errors'] + totals['pushes_socket_errors']}; "
        f"server log error lines: {log_errors}."
    )
    print()
    print(
        f"| process | pid | RSS MiB first | after warm-up ({args.warmup_intervals} intervals) "
        "| last | max "
        "| growth after warm-up | slope MiB / 10 min | flag |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for proc in rss:
        print(
            f"| {proc['role']} | {proc['pid']} | {proc['first_mib']} | {proc['after_warmup_mib']} "
            f"| {proc['last_mib']} | {proc['max_mib']} | {proc['growth_after_warmup_mib']:+} "
            f"| {proc['slope_mib_per_10min']:+} | {'**GROWING**' if proc['flagged'] else ''} |"
        )
    print()
    print("FLAGGED:\n- " + "\n- ".join(flags) if flags else "Nothing flagged.")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "warmup_intervals": args.warmup_intervals,
                    "growth_limit_mib": args.growth_mib,
                    "totals": totals,
                    "rss": rss,
                    "processes_changed": processes_changed,
                    "log_errors": log_errors,
                    "flags": flags,
                    "intervals": samples,
                },
                indent=2,
            )
            + "\n"
        )
    return 2 if flags else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="append one interval")
    rec.add_argument("out", type=Path)
    rec.add_argument("--interval", type=int, required=True)
    rec.add_argument("--t", type=int, required=True, help="seconds since the soak started")
    rec.add_argument("--reads", type=Path, required=True)
    rec.add_argument("--pushes", type=Path, required=True)
    rec.add_argument("--rss", required=True, help='"role:pid:kib ..."')
    rec.add_argument("--log-errors", type=int, default=0)
    rec.set_defaults(run=record)
    rep = sub.add_parser("report", help="print the table and the flags")
    rep.add_argument("folder", type=Path, help="the soak's results folder")
    rep.add_argument(
        "--warmup-intervals", type=int, default=2, help="intervals of warm-up (default 2)"
    )
    rep.add_argument("--growth-mib", type=float, default=8.0, help="flag limit (default 8)")
    rep.add_argument("--json", type=Path)
    rep.set_defaults(run=report)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
