"""Write a benchmark run's meta.json: what was measured, on which code and machine.

Usage: meta.py OUT --root REPO_ROOT --stamp STAMP --packages P... [--set KEY VALUE]...
A --set VALUE that parses as JSON is stored as such, otherwise as text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def out(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as exc:
        return f"? ({exc})"


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--root", required=True)
    parser.add_argument("--stamp", required=True)
    parser.add_argument("--packages", nargs="+", default=[])
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = parser.parse_args()
    status = out("git", "-C", args.root, "status", "--porcelain", "--", "app", "stores", "registry")
    meta: dict[str, Any] = {
        "stamp": args.stamp,
        "git_commit": out("git", "-C", args.root, "rev-parse", "--short", "HEAD"),
        # uncommitted changes to the server code measured by this run, if any
        "git_dirty": [line.strip() for line in status.splitlines()],
        "cpus": os.cpu_count(),
        "mem_total": out("sh", "-c", "grep MemTotal /proc/meminfo"),
        "python": platform.python_version(),
        "packages": {p: installed(p) for p in args.packages},
        "redis_server": out("redis-server", "--version"),
        "wrk": out("sh", "-c", "wrk -v 2>&1 | head -1"),
    }
    for key, value in args.set:
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    with open(args.out, "w") as handle:
        json.dump(meta, handle, indent=2)


if __name__ == "__main__":
    main()
