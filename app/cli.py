"""The ``ladle`` command line: init, apply, materialize, materialize-incremental, precompute,
serve."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from app import serve_options
from app.scaffold import init_repo
from app.server import serve
from registry.apply import apply_repo
from registry.backend import RegistryError
from registry.config import ConfigError, RepoSettings, load_repo_config
from registry.factory import open_registry
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
    report = asyncio.run(apply_repo(settings))
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
    where = open_registry(settings).describe()  # no password: it names a sql registry
    print(f"Registry version {report.snapshot.version} written to {where}")
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
    registry = open_registry(settings)
    try:
        await store.start()
        return await materialize(
            registry,
            FileOfflineStore(settings.root),
            store,
            views,
            end_us,
            start_us,
            _print_progress,
        )
    finally:
        await store.close()
        await registry.close()


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
    registry = open_registry(settings)
    try:
        return await precompute(registry, store, services, _print_progress)
    finally:
        await store.close()
        await registry.close()


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
    """The command line wins over $LADLE_* variables, which win over feature_server."""
    given = {name: getattr(args, name, None) for name in serve_options.ENVIRONMENT}
    given["access_log"] = False if args.no_access_log else None
    given["metrics"] = True if args.metrics else None
    options = serve_options.resolve(given, _settings(args).config.feature_server)
    try:
        code = serve(Path(args.chdir), options)
    except OSError as exc:  # a port in use, an address not on this machine
        raise CliError(f"cannot listen: {exc}") from None
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

    srv = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Each option falls back to its $LADLE_* environment variable, then to "
        "feature_server in feature_store.yaml, then to the default shown.",
    )
    _serve_arguments(srv)
    srv.set_defaults(run=cmd_serve)
    return parser


def _serve_arguments(srv: argparse.ArgumentParser) -> None:
    defaults = serve_options.ServeOptions()

    def add(*flags: str, name: str, help: str, **kwargs: object) -> None:
        variable = serve_options.ENVIRONMENT[name][0]
        srv.add_argument(*flags, dest=name, help=f"{help} (${variable})", **kwargs)  # type: ignore[arg-type]

    add("-H", "--host", name="host", help=f"address to bind; default {defaults.host}")
    add("-p", "--port", name="port", type=int, help=f"port; default {defaults.port}")
    add(
        "-w",
        "--workers",
        name="workers",
        type=int,
        help="worker processes, -1 for 2 x cores + 1; default 1",
    )
    add(
        "--worker-connections",
        name="worker_connections",
        type=int,
        help="most concurrent requests per worker; past it 503 with Retry-After; "
        f"default {defaults.worker_connections}",
    )
    add(
        "--max-requests",
        name="max_requests",
        type=int,
        help="restart a worker after this many requests; default never",
    )
    add(
        "--max-requests-jitter",
        name="max_requests_jitter",
        type=int,
        help="add up to this many requests at random to --max-requests; default 0",
    )
    add(
        "--keep-alive-timeout",
        name="keep_alive_timeout",
        type=float,
        help="seconds an idle connection stays open, and a new one has to send its "
        f"headers; default {defaults.keep_alive_timeout:g}",
    )
    add(
        "--graceful-timeout",
        name="graceful_timeout",
        type=float,
        help="seconds in-flight requests get to finish after SIGTERM; "
        f"default {defaults.graceful_timeout:g}",
    )
    add(
        "-r",
        "--registry-ttl-sec",
        name="registry_ttl_sec",
        type=float,
        help="seconds between registry change checks; default registry.cache_ttl_seconds (5)",
    )
    add("--key", name="key", help="TLS private key (PEM); needs --cert")
    add("--cert", name="cert", help="TLS certificate chain (PEM); needs --key")
    srv.add_argument(
        "-m",
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics on their own port, bound to --host ($LADLE_METRICS)",
    )
    add(
        "--metrics-port",
        name="metrics_port",
        type=int,
        help=f"port for the metrics; default {defaults.metrics_port}",
    )
    srv.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not write a JSON line per request ($LADLE_ACCESS_LOG=false)",
    )
    add(
        "--log-level",
        name="log_level",
        choices=list(serve_options.LOG_LEVELS),
        help=f"default {defaults.log_level}",
    )


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
