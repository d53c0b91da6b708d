"""The benchmark helpers that turn measurements into tables, flags and plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import profile_summary, soak_report, suite_report, suite_spec


def test_plan_lists_every_scenario_for_every_rows_and_conns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert suite_spec.main(["plan", "--rows", "1 10", "--conns", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{s.name} {rows} 16 {s.path} {s.service or '-'}"
        for rows in (1, 10)
        for s in suite_spec.SCENARIOS
    ]
    assert "floor 1 16 /floor -" in lines


def test_plan_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert suite_spec.main(["plan", "--scenarios", "features nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err


def _run(server: str, scenario: str, rows: int, rps: float, **extra: Any) -> dict[str, Any]:
    return {
        "server": server, "scenario": scenario, "rows": rows, "conns": 16, "rps": rps,
        "requests": int(rps * 10), "duration_s": 10.0, "bytes": int(rps * 10) * 2000,
        "endpoint": "/floor" if scenario.startswith("floor") else "/get-online-features",
        "lat_ms": {"p50": 1.0, "p99": 5.0},
        "errors": {"connect": 0, "read": 1, "write": 0, "timeout": 0, "non2xx": 2},
        **extra,
    }  # fmt: skip


def test_suite_report_divides_by_the_floor_of_the_same_server_rows_and_conns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cpu = {"server": 90.0, "redis": 5.0, "wrk": 10.0, "host": 125.0, "workers": [45.0, 45.0]}
    runs = [  # servers keep the order they ran in; within one, rows, conns, then plan order
        _run("hypercorn", "features", 10, 1000.0),  # no floor at 10 rows
        _run("hypercorn", "floor", 1, 6000.0),
        _run("hypercorn", "features", 1, 3000.0, cpu_pct=cpu),
        _run("uvicorn", "floor", 1, 8000.0),
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    (tmp_path / "meta.json").write_text(json.dumps({"plan": "features 1 16\nfloor 1 16"}))
    out = tmp_path / "results.json"
    assert suite_report.main([str(tmp_path), "--json", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith("| hypercorn | features | 1 | 16 | 3,000 |")
    assert "| 0.50 |" in table[2]
    assert "| **2** | **1** |" in table[2]  # non-2xx, then socket errors
    assert "| 0.30 | 90 / 5 / 10 / 20 (noisy) |" in table[2]  # CPU ms per request: 0.9 s / 3000
    assert table[4].startswith("| hypercorn | features | 10 |") and "| n/a |" in table[4]
    saved = json.loads(out.read_text())["runs"]
    assert [(r["server"], r["scenario"], r["vs_floor"]) for r in saved] == [
        ("hypercorn", "features", 0.5),
        ("hypercorn", "floor", 1.0),
        ("hypercorn", "features", None),
        ("uvicorn", "floor", 1.0),
    ]


def test_suite_report_divides_by_the_mean_of_the_floor_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [
        _run("hypercorn", "floor_before", 1, 5000.0),
        _run("hypercorn", "features", 1, 3000.0),
        _run("hypercorn", "floor", 1, 7000.0),
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    plan = "floor_before 1 16\nfeatures 1 16\nfloor 1 16"
    (tmp_path / "meta.json").write_text(json.dumps({"plan": plan}))
    out = tmp_path / "results.json"
    assert suite_report.main([str(tmp_path), "--json", str(out)]) == 0
    capsys.readouterr()
    saved = json.loads(out.read_text())["runs"]
    assert [(r["scenario"], r["vs_floor"]) for r in saved] == [
        ("floor_before", 0.833),
        ("features", 0.5),
        ("floor", 1.167),
    ]


def _sample(t: int, worker_kib: int, five_xx: int = 0) -> dict[str, Any]:
    wrk = {
        "requests": 100, "rps": 10.0, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0,
        "non2xx": five_xx, "status_4xx": 0, "status_5xx": five_xx, "socket_errors": 0,
    }  # fmt: skip
    return {
        "interval": t // 30,  # samples at 30 s, 60 s, ... are intervals 1, 2, ...
        "t_s": t,
        "reads": wrk,
        "pushes": dict(wrk, non2xx=0, status_5xx=0),
        "processes": [
            {"role": "parent", "pid": 1, "rss_kib": 50 * 1024},
            {"role": "worker", "pid": 2, "rss_kib": worker_kib},
        ],
        "log_errors": 0,
    }


def _soak(tmp_path: Path, samples: list[dict[str, Any]], *args: str) -> tuple[int, Any]:
    (tmp_path / "soak.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / "soak.json"
    code = soak_report.main(["report", str(tmp_path), "--json", str(out), *args])
    return code, json.loads(out.read_text())


def test_soak_flags_rss_growth_after_warm_up_only(tmp_path: Path) -> None:
    # +40 MiB during warm-up (ignored), then +2 MiB per interval: 6 MiB after warm-up.
    kib = [60, 100, 102, 104, 106]
    samples = [_sample(30 * (i + 1), v * 1024) for i, v in enumerate(kib)]
    code, report = _soak(tmp_path, samples, "--warmup-intervals", "2", "--growth-mib", "8")
    assert code == 0 and report["flags"] == []
    worker = next(p for p in report["rss"] if p["role"] == "worker")
    assert worker["after_warmup_mib"] == 100.0 and worker["growth_after_warmup_mib"] == 6.0
    assert worker["slope_mib_per_10min"] == pytest.approx(40.0)

    code, report = _soak(tmp_path, samples, "--warmup-intervals", "2", "--growth-mib", "5")
    assert code == 2
    assert report["flags"] == ["RSS of worker 2 grew 6.0 MiB after warm-up (limit 5.0 MiB)"]


def test_soak_flags_5xx_and_replaced_workers(tmp_path: Path) -> None:
    samples = [_sample(30, 100 * 1024), _sample(60, 100 * 1024, five_xx=3)]
    samples[1]["processes"][1]["pid"] = 3
    code, report = _soak(tmp_path, samples, "--warmup-intervals", "1")
    assert code == 2
    assert report["flags"][0] == "reads: non2xx 3, status_5xx 3"
    assert "processes changed" in report["flags"][1]


def test_profile_summary_counts_self_and_total_time(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "<module> (<string>:1);Runner.run (asyncio/runners.py:86) 10\n"
        "<module> (<string>:1);Router.app (starlette/routing.py:1);"
        "read (app/assemble.py:28);format_us (stores/timestamps.py:69) 30\n"
        "<module> (<string>:1);Router.app (starlette/routing.py:1);"
        "read (app/assemble.py:28) 60\n"
    )
    text = profile_summary.summarize(profile_summary.parse(raw), 5, "t")
    assert "| ladle: app/ | 60.0% | 90.0% |" in text
    assert "| ladle: stores/ | 30.0% | 30.0% |" in text
    assert "| event loop (asyncio, uvloop) | 10.0% | 10.0% |" in text
    assert "| `read (app/assemble.py:28)` | 90.0% | 60.0% |" in text  # Ladle: total, self
    assert "<string>" not in text.split("by total time")[1]  # start-up frames left out
