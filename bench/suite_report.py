"""Render a bench/suite.sh run as one markdown table and write it as JSON.

    python -m bench.suite_report                               # bench/results/latest-suite
    python -m bench.suite_report bench/results/suite-<stamp>   # a given run
    python -m bench.suite_report RUN --json RUN/results.json   # also write the JSON

Each line of ``results.jsonl`` is bench/suite-profile.lua's done() summary plus the
fields suite.sh adds (server, scenario, rows, conns, endpoint, service, cpu_pct). "vs
floor" is a run's RPS over the RPS of the floor scenario (POST /floor: decode the body,
answer a fixed reply) on the same server at the same rows and connections. Errors are
wrk's non-2xx responses and socket errors (connect, read, write, timeout). KB/response
is what wrk read per request, headers included (the floor's reply is a fixed one-row
answer whatever the rows, so it never pays for large responses). Server CPU ms/request
is the server's CPU time over the requests served, which other load on the machine
disturbs less than RPS. CPU is % of
one core (the machine is 100 x cores): the server (every process of it), redis-server,
wrk, and "other" = the rest of the machine (with --target, the target server is part of
"other"); rows where others took more than 15% are marked noisy. When a run was measured
more than once, the last line wins.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.report import NOISY, other_pct

DEFAULT = Path(__file__).resolve().parent / "results" / "latest-suite"

Key = tuple[str, str, int, int]


def load(path: Path) -> list[dict[str, Any]]:
    runs: dict[Key, dict[str, Any]] = {}
    with (path / "results.jsonl").open() as lines:
        for line in lines:
            if line.strip():
                run = json.loads(line)
                runs[(run["server"], run["scenario"], int(run["rows"]), int(run["conns"]))] = run
    return list(runs.values())


def with_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """vs_floor: RPS over the mean RPS of the floor runs at the same server, rows and
    conns (the suite measures the floor before and after the other scenarios)."""
    floors: dict[tuple[str, int, int], list[float]] = {}
    for r in runs:
        if r.get("endpoint") == "/floor":
            floors.setdefault((r["server"], int(r["rows"]), int(r["conns"])), []).append(r["rps"])
    for run in runs:
        floor = floors.get((run["server"], int(run["rows"]), int(run["conns"])))
        run["vs_floor"] = round(run["rps"] / (sum(floor) / len(floor)), 3) if floor else None
    return runs


def ordered(runs: list[dict[str, Any]], plan: list[str]) -> list[dict[str, Any]]:
    servers = list(dict.fromkeys(r["server"] for r in runs))
    scenarios = [*plan, *sorted({r["scenario"] for r in runs} - set(plan))]
    return sorted(
        runs,
        key=lambda r: (
            servers.index(r["server"]),
            int(r["rows"]),
            int(r["conns"]),
            scenarios.index(r["scenario"]),
        ),
    )


def socket_errors(run: dict[str, Any]) -> int:
    errors = run["errors"]
    return int(sum(v for k, v in errors.items() if k != "non2xx"))


def response_kb(run: dict[str, Any]) -> float:
    """Mean bytes read per request (headers included), in KB."""
    return float(run["bytes"]) / max(int(run["requests"]), 1) / 1000


def cpu_ms(run: dict[str, Any]) -> float | None:
    """Server CPU time per request: steadier than RPS when other load shares the machine."""
    cpu = run.get("cpu_pct")
    if not cpu or run["server"] == "target" or not run["rps"]:
        return None
    return round(float(cpu["server"]) * 10 / float(run["rps"]), 3)


def cpu_ms_text(run: dict[str, Any]) -> str:
    value = cpu_ms(run)
    return "" if value is None else f"{value:.2f}"


def cpu_text(run: dict[str, Any]) -> str:
    cpu = run.get("cpu_pct")
    if not cpu:
        return ""
    other = other_pct(cpu)
    if run["server"] == "target":  # its processes are not known: they count as "other"
        return f"- / - / {cpu['wrk']:.0f} / {other:.0f} (target included)"
    return f"{cpu['server']:.0f} / {cpu['redis']:.0f} / {cpu['wrk']:.0f} / {other:.0f}" + (
        " (noisy)" if other > NOISY else ""
    )


def render(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| server | scenario | rows | conns | RPS | p50 ms | p99 ms | non-2xx | socket errors "
        "| vs floor | KB/response | server CPU ms/request | CPU % server / redis / wrk / other |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        non2xx = int(r["errors"]["non2xx"])
        sockets = socket_errors(r)
        ratio = "n/a" if r["vs_floor"] is None else f"{r['vs_floor']:.2f}"
        lines.append(
            f"| {r['server']} | {r['scenario']} | {r['rows']} | {r['conns']} "
            f"| {r['rps']:,.0f} | {r['lat_ms']['p50']:.2f} | {r['lat_ms']['p99']:.2f} "
            f"| {f'**{non2xx}**' if non2xx else 0} | {f'**{sockets}**' if sockets else 0} "
            f"| {ratio} | {response_kb(r):.1f} | {cpu_ms_text(r)} | {cpu_text(r)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path, default=DEFAULT, help="a suite run folder")
    parser.add_argument("--json", type=Path, help="write the runs (with vs_floor) and meta here")
    args = parser.parse_args(argv)
    folder: Path = args.run
    if not (folder / "results.jsonl").exists():
        print(f"suite_report: no {folder}/results.jsonl; run bench/suite.sh", file=sys.stderr)
        return 1
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    plan = [line.split()[0] for line in str(meta.get("plan", "")).splitlines() if line.strip()]
    runs = ordered(with_ratios(load(folder)), list(dict.fromkeys(plan)))
    if not runs:
        print(f"suite_report: no runs in {folder}/results.jsonl", file=sys.stderr)
        return 1
    print(render(runs))
    if args.json:
        summary = [
            {
                "server": r["server"],
                "scenario": r["scenario"],
                "endpoint": r.get("endpoint"),
                "service": None if r.get("service") in (None, "-") else r["service"],
                "rows": int(r["rows"]),
                "conns": int(r["conns"]),
                "threads": r.get("threads"),
                "workers": r.get("workers"),
                "requests": r["requests"],
                "duration_s": r["duration_s"],
                "rps": r["rps"],
                "latency_ms": r["lat_ms"],
                "non2xx": int(r["errors"]["non2xx"]),
                "socket_errors": socket_errors(r),
                "errors": r["errors"],
                "vs_floor": r["vs_floor"],
                "response_kb": round(response_kb(r), 2),
                "server_cpu_ms_per_request": cpu_ms(r),
                "cpu_pct": r.get("cpu_pct"),
                "attempts": r.get("attempts", 1),
            }
            for r in runs
        ]
        args.json.write_text(json.dumps({"meta": meta, "runs": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
