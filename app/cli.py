"""The ``ladle`` command line: init, apply, materialize, materialize-incremental, precompute,
serve."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from app.scaffold import init_repo
from app.server import ServeOptions, serve
from registry.apply import apply_repo
from registry.config import ConfigError, RepoSettings, load_repo_config
from registry.file_registry import FileRegistry, RegistryError
from registry.repo import RepoError
from stores import timestamps
from stores.base import StoreUnavailable
from stores.factory import create_online_store
from stores.keys import project_prefix
from stores.materialize import MaterializeError, ViewResult, materialize
from stores.offline import FileOfflineStore, OfflineStoreError
from stores.precompute_build import PrecomputeError, PrecomputeResult, precompute


class CliError(Exception):
    pass


def _timestamp(text: str) -> int:
    if text.lower() == "now":
        return timestamps.now_us()
    try:
        return timestamps.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(args: argparse.Namespace) -> RepoSettings:
    return load_repo_config(Path(args.chdir))


def cmd_init(args: argparse.Namespace) -> None:
    target = Path(args.chdir) / args.name
    try:
        init_repo(target)
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    print(
        f"Created a demo feature repo in {target}.\n"
        f"Next: cd {args.name} && ladle apply && ladle materialize-incremental now "
        "&& ladle serve"
    )


def cmd_apply(args: argparse.Namespace) -> None:
    settings = _settings(args)
    report = apply_repo(settings)
    for line in report.created:
        print(f"Created {line}")
    for line in report.updated:
        print(f"Updated {line}")
    for line in report.deleted:
        print(f"Deleted {line}")
    if not (report.created or report.updated or report.deleted):
        print("No changes.")
    if report.deleted_views:
        asyncio.run(_drop_views(settings, report.deleted_views))
    print(f"Registry version {report.snapshot.version} written to {settings.registry_path}")
    for name in report.needs_precompute:
        print(
            f"Feature service {name} has precompute_online but its vectors are not built for "
            f"this definition: run `ladle precompute {name}` (reads of it answer 503 until then)"
        )


async def _drop_views(settings: RepoSettings, views: list[str]) -> None:
    store = create_online_store(settings)
    await store.start()
    try:
        await store.delete_views(project_prefix(settings.config.project), views)
    finally:
        await store.close()


def _print_progress(view: str, done: int, total: int) -> None:
    """A bar per view on stderr; redrawn in place on a terminal, one line per step in logs."""
    width = 30
    filled = width if total == 0 else min(width, done * width // total)
    percent = 100 if total == 0 else min(100, done * 100 // total)
    bar = f"{view:<30} |{'#' * filled}{'.' * (width - filled)}| {percent:3d}% {done}/{total}"
    finished = done >= total
    if sys.stderr.isatty():
        print("\r" + bar, end="\n" if finished else "", file=sys.stderr, flush=True)
    elif finished or done == 0:
        print(bar, file=sys.stderr, flush=True)


async def _materialize(
    settings: RepoSettings, views: Sequence[str] | None, end_us: int, start_us: int | None
) -> list[ViewResult]:
    store = create_online_store(settings)
    await store.start()
    try:
        return await materialize(
            FileRegistry(settings.registry_path),
            FileOfflineStore(settings.root),
            store,
            views,
            end_us,
            start_us,
            _print_progress,
        )
    finally:
        await store.close()


def _report(results: list[ViewResult]) -> None:
    if not results:
        print("Nothing to materialize.")
    for r in results:
        print(
            f"{r.view}: {timestamps.format_us(r.start_us)} to {timestamps.format_us(r.end_us)}"
            f": {r.rows} entities read, {r.written} written"
        )


def cmd_materialize(args: argparse.Namespace) -> None:
    _report(asyncio.run(_materialize(_settings(args), args.views, args.end, args.start)))


def cmd_materialize_incremental(args: argparse.Namespace) -> None:
    _report(asyncio.run(_materialize(_settings(args), args.views, args.end, None)))


async def _precompute(settings: RepoSettings, services: Sequence[str]) -> list[PrecomputeResult]:
    store = create_online_store(settings)
    await store.start()
    try:
        registry = FileRegistry(settings.registry_path)
        return await precompute(registry, store, services, _print_progress)
    finally:
        await store.close()


def cmd_precompute(args: argparse.Namespace) -> None:
    try:
        results = asyncio.run(_precompute(_settings(args), args.services))
    except PrecomputeError as exc:
        raise CliError(str(exc)) from None
    for r in results:
        print(
            f"{r.service}: {r.scanned} entity keys scanned, {r.written} vectors written, "
            f"{r.dropped} dropped, {r.retried} re-read after concurrent writes; "
            f"built with fingerprint {r.fingerprint}"
        )


def cmd_serve(args: argparse.Namespace) -> None:
    """Options given on the command line win over feature_server in the repo's config."""
    server = _settings(args).config.feature_server
    options = ServeOptions(
        host=args.host or server.host or "127.0.0.1",
        port=args.port if args.port is not None else server.port or 6566,
        workers=args.workers if args.workers is not None else server.workers or 1,
        registry_ttl_sec=args.registry_ttl_sec,
        access_log=not args.no_access_log,
        log_level=args.log_level,
        metrics=args.metrics,
        metrics_port=args.metrics_port,
    )
    code = serve(Path(args.chdir), options)
    if code:
        raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ladle", description=("Ladle: an online feature server that speaks Feast's HTTP API.")
    )
    parser.add_argument(
        "-c",
        "--chdir",
        default=".",
        metavar="REPO",
        help="the feature repo folder (default: the working directory)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="write a runnable demo feature repo")
    init.add_argument("name", help="folder to create")
    init.set_defaults(run=cmd_init)

    apply = commands.add_parser("apply", help="check the repo's definitions and write the registry")
    apply.set_defaults(run=cmd_apply)

    views_help = "feature views to materialize (default: every online view)"
    mat = commands.add_parser(
        "materialize", help="copy the latest offline values in [START, END] to the online store"
    )
    mat.add_argument("start", type=_timestamp, help="ISO 8601 time (no offset = UTC) or 'now'")
    mat.add_argument("end", type=_timestamp, help="ISO 8601 time (no offset = UTC) or 'now'")
    mat.add_argument("-v", "--views", nargs="+", metavar="VIEW", help=views_help)
    mat.set_defaults(run=cmd_materialize)

    inc = commands.add_parser(
        "materialize-incremental", help="materialize each view from where its last run ended to END"
    )
    inc.add_argument("end", type=_timestamp, help="ISO 8601 time (no offset = UTC) or 'now'")
    inc.add_argument("-v", "--views", nargs="+", metavar="VIEW", help=views_help)
    inc.set_defaults(run=cmd_materialize_incremental)

    pre = commands.add_parser(
        "precompute",
        help="rebuild the precomputed vectors of feature services with precompute_online",
    )
    pre.add_argument("services", nargs="+", metavar="SERVICE", help="feature service names")
    pre.set_defaults(run=cmd_precompute)

    srv = commands.add_parser("serve", help="serve the HTTP API with hypercorn")
    srv.add_argument(
        "-H",
        "--host",
        help="address to bind (default: feature_server.host, else 127.0.0.1)",
    )
    srv.add_argument(
        "-p", "--port", type=int, help="port (default: feature_server.port, else 6566)"
    )
    srv.add_argument(
        "-w",
        "--workers",
        type=int,
        help="worker processes; -1 means 2 x cores + 1 (default: feature_server.workers, else 1)",
    )
    srv.add_argument(
        "-r",
        "--registry-ttl-sec",
        type=float,
        default=None,
        help="seconds between registry change checks (default: $LADLE_REGISTRY_TTL_SEC, "
        "else feature_server.registry_ttl_sec, else registry.cache_ttl_seconds, 5)",
    )
    srv.add_argument("--no-access-log", action="store_true", help="do not log each request")
    srv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    srv.add_argument(
        "-m",
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics on their own port, bound to --host",
    )
    srv.add_argument(
        "--metrics-port", type=int, default=8000, help="port for --metrics (default 8000)"
    )
    srv.set_defaults(run=cmd_serve)
    return parser


def main_cli(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (
        CliError,
        ConfigError,
        RepoError,
        RegistryError,
        MaterializeError,
        OfflineStoreError,
        StoreUnavailable,
    ) as exc:
        print(f"ladle {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
