"""Render a bench/overhead.sh run as one markdown table and write it as JSON.

    python -m bench.overhead_report                                  # the newest run
    python -m bench.overhead_report bench/results/overhead-<stamp>   # a given one
    python -m bench.overhead_report RUN --json RUN/results.json      # also write the JSON

Each line of ``results.jsonl`` is one measured wrk run (bench/suite-profile.lua's done()
summary) plus the fields overhead.sh adds: config, round, rows, conns, cpu_pct. "vs
baseline" is a run's RPS over the RPS of the ``baseline`` config in the same round at
the same rows and connections; "+CPU us/request" is the server CPU time per request minus
the baseline's, which other load on the machine disturbs less than RPS. With several
rounds every figure is the median over the rounds (ratios and differences are taken
within a round first). Errors are wrk's non-2xx responses plus socket errors.

``results-inproc.jsonl``, when present, holds bench/overhead_inproc.py's figures: the
app's CPU time per request, measured in one process without HTTP, in blocks of requests
timed for each config in turn. Its table shows the least disturbed block (the minimum),
the median block, and two differences from the baseline at the same rows: of the minima,
and the median of the differences between blocks timed side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

from bench.report import NOISY, other_pct
from bench.suite_report import socket_errors

DEFAULT = Path(__file__).resolve().parent / "results" / "latest-overhead"
BASELINE = "baseline"

Point = tuple[int, int, int]  # round, rows, conns


def load(folder: Path) -> list[dict[str, Any]]:
    runs: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    with (folder / "results.jsonl").open() as lines:
        for line in lines:
            if line.strip():
                run = json.loads(line)
                key = (run["config"], int(run["round"]), int(run["rows"]), int(run["conns"]))
                runs[key] = run  # a run measured again: the last line wins
    return list(runs.values())


def cpu_ms(run: dict[str, Any]) -> float | None:
    cpu = run.get("cpu_pct")
    if not cpu or not run["rps"]:
        return None
    return float(cpu["server"]) * 10 / float(run["rps"])


def _median(values: list[float]) -> float | None:
    return median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config, rows and conns: medians over the rounds."""
    base: dict[Point, dict[str, Any]] = {
        (int(r["round"]), int(r["rows"]), int(r["conns"])): r
        for r in runs
        if r["config"] == BASELINE
    }
    configs = list(dict.fromkeys(r["config"] for r in runs))
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["config"], int(run["rows"]), int(run["conns"])), []).append(run)
    rows = []
    for (config, n_rows, conns), group in groups.items():
        ratios, deltas = [], []
        for run in group:
            ref = base.get((int(run["round"]), n_rows, conns))
            if ref and ref["rps"]:
                ratios.append(run["rps"] / ref["rps"])
            mine, theirs = cpu_ms(run), cpu_ms(ref) if ref else None
            if mine is not None and theirs is not None:
                deltas.append((mine - theirs) * 1000)
        cpu = [c for c in (cpu_ms(r) for r in group) if c is not None]
        others = [other_pct(r["cpu_pct"]) for r in group if r.get("cpu_pct")]
        rows.append(
            {
                "config": config,
                "rows": n_rows,
                "conns": conns,
                "rounds": len(group),
                "rps": median(r["rps"] for r in group),
                "p50_ms": median(r["lat_ms"]["p50"] for r in group),
                "p99_ms": median(r["lat_ms"]["p99"] for r in group),
                "non2xx": sum(int(r["errors"]["non2xx"]) for r in group),
                "socket_errors": sum(socket_errors(r) for r in group),
                "vs_baseline": _median(ratios),
                "server_cpu_ms_per_request": _median(cpu),
                "cpu_us_vs_baseline": _median(deltas),
                "cpu_pct": _median_cpu(group),
                "other_cpu_pct_max": max(others) if others else None,
                "runs": group,
            }
        )
    rows.sort(key=lambda r: (r["rows"], r["conns"], configs.index(r["config"])))
    return rows


def _median_cpu(group: list[dict[str, Any]]) -> dict[str, float] | None:
    cpus = [r["cpu_pct"] for r in group if r.get("cpu_pct")]
    if not cpus:
        return None
    return {part: median(float(c[part]) for c in cpus) for part in ("server", "redis", "wrk")} | {
        "other": median(other_pct(c) for c in cpus)
    }


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| config | rows | conns | RPS | p50 ms | p99 ms | errors | vs baseline "
        "| server CPU ms/request | +CPU us/request | CPU % server / redis / wrk / other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        errors = r["non2xx"] + r["socket_errors"]
        cpu = r["cpu_pct"]
        cpu_text = ""
        if cpu:
            cpu_text = f"{cpu['server']:.0f} / {cpu['redis']:.0f} / {cpu['wrk']:.0f} / "
            cpu_text += f"{cpu['other']:.0f}"
            if (r["other_cpu_pct_max"] or 0) > NOISY:
                cpu_text += " (noisy)"
        delta = "" if r["config"] == BASELINE else _num(r["cpu_us_vs_baseline"], "+.0f")
        lines.append(
            f"| {r['config']} | {r['rows']} | {r['conns']} | {r['rps']:,.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {f'**{errors}**' if errors else 0} "
            f"| {_num(r['vs_baseline'], '.2f')} "
            f"| {_num(r['server_cpu_ms_per_request'], '.3f')} | {delta} | {cpu_text} |"
        )
    return "\n".join(lines)


def load_inproc(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results-inproc.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize_inproc(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        blocks.setdefault((run["config"], int(run["rows"])), []).extend(run["cpu_us"])
    configs = list(dict.fromkeys(r["config"] for r in runs))
    rows = []
    for (config, n_rows), values in blocks.items():
        base = blocks.get((BASELINE, n_rows))
        paired = [mine - theirs for mine, theirs in zip(values, base or [], strict=False)]
        rows.append(
            {
                "config": config,
                "rows": n_rows,
                "blocks": len(values),
                "cpu_us_min": min(values),
                "cpu_us_median": median(values),
                "cpu_us_vs_baseline": min(values) - min(base) if base else None,
                "cpu_us_vs_baseline_paired": median(paired) if paired else None,
                "cpu_vs_baseline": min(values) / min(base) if base else None,
            }
        )
    rows.sort(key=lambda r: (r["rows"], configs.index(r["config"])))
    return rows


def render_inproc(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| config | rows | CPU us/request (min) | median | +us (min) | +us (paired median) "
        "| x baseline (min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = r["config"] == BASELINE
        delta = "" if base else _num(r["cpu_us_vs_baseline"], "+.1f")
        paired = "" if base else _num(r["cpu_us_vs_baseline_paired"], "+.1f")
        lines.append(
            f"| {r['config']} | {r['rows']} | {r['cpu_us_min']:.1f} | {r['cpu_us_median']:.1f} "
            f"| {delta} | {paired} | {_num(r['cpu_vs_baseline'], '.3f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path, default=DEFAULT, help="a run folder")
    parser.add_argument("--json", type=Path, help="write the summary rows and meta here")
    args = parser.parse_args(argv)
    folder: Path = args.run
    if not (folder / "results.jsonl").exists():
        print(f"overhead_report: no {folder}/results.jsonl; run bench/overhead.sh", file=sys.stderr)
        return 1
    runs = load(folder)
    if not runs:
        print(f"overhead_report: no runs in {folder}/results.jsonl", file=sys.stderr)
        return 1
    rows = summarize(runs)
    print(render(rows))
    inproc = summarize_inproc(load_inproc(folder))
    if inproc:
        print("\nIn process (bench/overhead_inproc.py, no HTTP):\n")
        print(render_inproc(inproc))
    if args.json:
        meta_file = folder / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        summary = {"meta": meta, "rows": rows, "inproc": inproc}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
