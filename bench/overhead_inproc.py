"""The app's CPU time per request in each server config, side by side in one process.

    python -m bench.overhead_inproc --repo REPO --auth-repo AUTH_REPO --token-file TOKEN \
        --metrics-dir DIR --configs "baseline metrics auth access_log all" --rows "1 10" \
        --out results-inproc.jsonl [--log access.log]

bench/overhead.sh runs this after its wrk runs. One app per config (bench.floor_app,
lifespan included, real Redis), each built with its config's environment and repo as its
server was (bench/overhead_configs.py ``CONFIGS``). The apps are called directly as ASGI
apps, no HTTP, with POST /get-online-features bodies of ROWS random ids and all 30
features (and the bearer token for auth configs). After a warm-up, ``--blocks`` rounds
time a block of ``--requests`` requests of each app in turn (in reverse order every
other round) with ``time.process_time``; every reply must be a 200.

Why: the HTTP server's work is the same in every config, and blocks of a few tens of
milliseconds, interleaved, see the same load from the rest of the machine, so the
difference between configs stands out even on a busy machine. The access log goes to
stdout, which is sent to a file (``--log``) as the server's goes to its log file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

from bench import suite_spec
from bench.overhead_configs import CONFIGS

Call = Callable[[bytes], Awaitable[None]]

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/get-online-features",
    "raw_path": b"/get-online-features",
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 6566),
}


def bodies(rows: int, entities: int, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    features = suite_spec.all_refs()
    return [
        json.dumps(
            {
                "entities": {suite_spec.JOIN_KEY: rng.sample(range(1, entities + 1), rows)},
                "features": features,
            }
        ).encode()
        for _ in range(count)
    ]


def caller(app: Any, authorization: str, statuses: dict[int, int]) -> Call:
    headers = [(b"host", b"ladle"), (b"content-type", b"application/json")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))

    async def call(body: bytes) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        length = (b"content-length", str(len(body)).encode())
        await app({**SCOPE, "headers": [*headers, length]}, receive, send)

    return call


async def start_app(stack: AsyncExitStack, name: str, args: argparse.Namespace) -> Any:
    """Config ``name``'s app, started with its environment (read at startup)."""
    from bench.floor_app import create_floor_app

    steps = CONFIGS[name]
    os.environ["LADLE_ACCESS_LOG"] = "true" if steps.access_log else "false"
    if steps.metrics:
        os.environ["LADLE_METRICS"] = "true"
    else:
        os.environ.pop("LADLE_METRICS", None)
    app = create_floor_app(args.auth_repo if steps.auth else args.repo)
    await stack.enter_async_context(app.router.lifespan_context(app))
    return app


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    names: list[str] = args.configs.split()
    needs_token = any(CONFIGS[name].auth for name in names)
    token = args.token_file.read_text().strip() if needs_token else ""
    statuses: dict[str, dict[int, int]] = {name: {} for name in names}
    results = []
    async with AsyncExitStack() as stack:
        calls: dict[str, Call] = {}
        for name in names:
            app = await start_app(stack, name, args)
            authorization = f"Bearer {token}" if CONFIGS[name].auth else ""
            calls[name] = caller(app, authorization, statuses[name])
        for rows in (int(r) for r in args.rows.split()):
            payloads = bodies(rows, args.entities, 1000, args.seed)
            for name in names:
                for i in range(args.warmup):
                    await calls[name](payloads[i % len(payloads)])
            cpu_us: dict[str, list[float]] = {name: [] for name in names}
            order = list(names)
            for block in range(args.blocks):
                for name in order:
                    start = time.process_time()
                    for i in range(args.requests):
                        await calls[name](payloads[(block * args.requests + i) % len(payloads)])
                    cpu_us[name].append((time.process_time() - start) * 1e6 / args.requests)
                order.reverse()
            results += [
                {
                    "config": name,
                    "rows": rows,
                    "requests": args.requests,
                    "cpu_us": [round(v, 1) for v in cpu_us[name]],
                }
                for name in names
            ]
    bad = {name: s for name, s in statuses.items() if set(s) != {200}}
    if bad:
        raise SystemExit(f"overhead_inproc: replies other than 200: {bad}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, type=Path, help="the suite repo")
    parser.add_argument("--auth-repo", type=Path, help="its oidc copy (auth configs)")
    parser.add_argument("--token-file", type=Path, help="the bearer token (auth configs)")
    parser.add_argument("--metrics-dir", type=Path, help="PROMETHEUS_MULTIPROC_DIR (metrics)")
    parser.add_argument("--configs", default=" ".join(CONFIGS))
    parser.add_argument("--rows", default="1 10")
    parser.add_argument("--out", required=True, type=Path, help="JSONL file to append to")
    parser.add_argument("--log", type=Path, default=Path(os.devnull), help="stdout goes here")
    parser.add_argument("--entities", type=int, default=suite_spec.ENTITIES)
    parser.add_argument("--warmup", type=int, default=200, help="requests per app and rows")
    parser.add_argument("--requests", type=int, default=100, help="requests per block")
    parser.add_argument("--blocks", type=int, default=40, help="blocks per app and rows")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for name in args.configs.split():
        if name not in CONFIGS:
            parser.error(f"unknown config {name!r}")
        if CONFIGS[name].auth and not (args.auth_repo and args.token_file):
            parser.error(f"{name} needs --auth-repo and --token-file")
        if CONFIGS[name].metrics and not args.metrics_dir:
            parser.error(f"{name} needs --metrics-dir")
    if args.metrics_dir:  # before prometheus_client is imported: multiprocess mode
        args.metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(args.metrics_dir)
    # The access log writes to stdout (fd 1); send it where the server's would go.
    with args.log.open("ab") as log:
        sys.stdout.flush()
        os.dup2(log.fileno(), 1)
    results = uvloop.run(measure(args))
    with args.out.open("a") as out:
        out.writelines(json.dumps(r) + "\n" for r in results)
    for r in results:
        print(
            f"in process: {r['config']:<11} {r['rows']:>3} rows: "
            f"{min(r['cpu_us']):7.1f} us CPU/request (least of {len(r['cpu_us'])} blocks)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
