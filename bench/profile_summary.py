"""Summarize py-spy's raw (collapsed-stack) output: where a server process spends its CPU.

    python -m bench.profile_summary bench/results/latest-profile/raw/profile_r1.txt
    python -m bench.profile_summary A.txt B.txt --top 15 --title "1 row" --title "10 rows"

Each input line is ``frame;frame;...;leaf COUNT`` (``py-spy record --format raw``), a frame
being ``function (file:line)``. Idle samples (the event loop waiting in epoll) are not
recorded by py-spy unless --idle is given, so the shares are of the CPU time the process
was busy in Python code or in C code called from it (C time counts for the Python frame
that called it). Printed, as markdown, per input:

- **by layer**: the share of samples whose leaf frame is in each layer (Ladle's own code,
  the HTTP server, starlette, the event loop, ...): the self time of that layer;
- **inclusive**: the share of samples with a frame of that layer anywhere on the stack;
- **top frames by self time** and **by total time** (the frame anywhere on the stack;
  the process start-up frames every sample runs under are left out);
- **Ladle's functions** (app/, stores/, registry/) by total time, with their self time.

A frame's self time includes the C code it calls: socket writes (``transport.write``)
show up as the Python frame that wrote, uvloop's own loop work as ``Runner.run``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

#: (layer, file-path pattern) in order; the first match names a frame's layer.
LAYERS: tuple[tuple[str, str], ...] = (
    ("ladle: app/", r"^app/"),
    ("ladle: stores/", r"^stores/"),
    ("ladle: registry/", r"^registry/"),
    ("bench (floor endpoint)", r"^bench/"),
    ("starlette", r"^starlette/"),
    ("hypercorn + h11", r"^(hypercorn|h11|h2|wsproto|priority)/"),
    ("uvicorn + httptools", r"^(uvicorn|httptools)/"),
    ("event loop (asyncio, uvloop)", r"^(asyncio|uvloop|anyio|sniffio|selectors)"),
    ("msgspec / orjson", r"^(msgspec|orjson)"),
    ("redis-py", r"^redis/"),
    ("C code (with --native: libc, libpython, extensions)", r"\.so(\.|$)"),
)
#: Process start-up frames under which everything runs: left out of the "total" table.
BOOTSTRAP = re.compile(
    r"^(<string>|multiprocessing/|asyncio/runners\.py|hypercorn/asyncio/run\.py"
    r"|uvicorn/(server|main|_subprocess|config)\.py|uvicorn/supervisors/)"
)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def frame_file(frame: str) -> str:
    match = FRAME.match(frame)
    return match["file"] if match else ""


def layer(frame: str) -> str:
    file = frame_file(frame)
    for name, pattern in LAYERS:
        if re.search(pattern, file):
            return name
    if not file:
        return "other"
    return "other Python (stdlib, ...)" if file.endswith(".py") else "other"


def share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%"


def summarize(stacks: Counter[tuple[str, ...]], top: int, title: str) -> str:
    total = sum(stacks.values())
    if not total:
        return f"### {title}\n\nno samples\n"
    self_frames: Counter[str] = Counter()
    total_frames: Counter[str] = Counter()
    self_layers: Counter[str] = Counter()
    incl_layers: Counter[str] = Counter()
    for stack, count in stacks.items():
        self_frames[stack[-1]] += count
        self_layers[layer(stack[-1])] += count
        for frame in set(stack):
            if not BOOTSTRAP.search(frame_file(frame)):
                total_frames[frame] += count
        for name in {layer(frame) for frame in stack}:
            incl_layers[name] += count
    out = [f"### {title}", "", f"{total:,} samples.", ""]
    out += ["| layer | self | inclusive |", "|---|---:|---:|"]
    for name, count in self_layers.most_common():
        out.append(f"| {name} | {share(count, total)} | {share(incl_layers[name], total)} |")
    out += ["", "| top frames by self time | self |", "|---|---:|"]
    out += [f"| `{f}` | {share(c, total)} |" for f, c in self_frames.most_common(top)]
    out += ["", "| top frames by total time (start-up frames left out) | total |", "|---|---:|"]
    out += [f"| `{f}` | {share(c, total)} |" for f, c in total_frames.most_common(top)]
    own = [(f, c) for f, c in total_frames.most_common() if layer(f).startswith("ladle")]
    out += ["", "| Ladle's functions by total time | total | self |", "|---|---:|---:|"]
    out += [f"| `{f}` | {share(c, total)} | {share(self_frames[f], total)} |" for f, c in own[:top]]
    return "\n".join(out) + "\n"


def wrk_line(path: Path) -> str:
    """RPS, latency and errors from a bench/suite-profile.lua result line."""
    run = json.loads(path.read_text().splitlines()[0])
    errors = sum(run["errors"].values())
    return (
        f"{run['rps']:,.0f} RPS, p50 {run['lat_ms']['p50']:.2f} ms, "
        f"p99 {run['lat_ms']['p99']:.2f} ms, {errors} errors"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="*", type=Path, help="py-spy --format raw files")
    parser.add_argument("--top", type=int, default=15, help="frames per table (default 15)")
    parser.add_argument("--title", action="append", default=[], help="one per profile")
    parser.add_argument(
        "--wrk", action="append", default=[], type=Path, help="wrk result line, one per profile"
    )
    parser.add_argument("--wrk-line", type=Path, help="only print this wrk result's figures")
    args = parser.parse_args(argv)
    if args.wrk_line:
        print(wrk_line(args.wrk_line))
        return 0
    titles = args.title + [p.name for p in args.profiles[len(args.title) :]]
    for index, (path, title) in enumerate(zip(args.profiles, titles, strict=True)):
        if not path.exists():
            print(f"profile_summary: {path} does not exist", file=sys.stderr)
            return 1
        if index < len(args.wrk):
            title += f" ({wrk_line(args.wrk[index])} while sampled)"
        print(summarize(parse(path), args.top, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
