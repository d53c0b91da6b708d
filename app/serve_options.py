"""`ladle serve` options, from three places: command line, environment, feature_store.yaml.

An option given on the command line wins; else its ``LADLE_*`` environment variable; else
the repo's ``feature_server`` section; else the default. Each option is declared once in
:data:`OPTIONS`, which the CLI, the README table and the tests all read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from registry.config import ConfigError, FeatureServerConfig


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 6566
    #: Worker processes; -1 means 2 x cores + 1.
    workers: int = 1
    #: The most requests one worker serves at once; past it, 503 with Retry-After.
    worker_connections: int = 1000
    #: Recycle a worker after this many requests (None: never, the default).
    max_requests: int | None = None
    max_requests_jitter: int = 0
    #: Seconds an idle keep-alive connection (or one still sending its headers) stays open.
    keep_alive_timeout: float = 5.0
    #: Seconds that in-flight requests get to finish after SIGTERM.
    graceful_timeout: float = 30.0
    registry_ttl_sec: float | None = None
    #: TLS: a PEM private key and certificate chain; both or neither.
    key: str | None = None
    cert: str | None = None
    metrics: bool = False
    metrics_port: int = 8000
    access_log: bool = True
    log_level: str = "info"


LOG_LEVELS = ("debug", "info", "warning", "error")


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none", "off") else int(text)


#: Environment variable and parser per option.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "host": ("LADLE_HOST", str),
    "port": ("LADLE_PORT", int),
    "workers": ("LADLE_WORKERS", int),
    "worker_connections": ("LADLE_WORKER_CONNECTIONS", int),
    "max_requests": ("LADLE_MAX_REQUESTS", _optional_int),
    "max_requests_jitter": ("LADLE_MAX_REQUESTS_JITTER", int),
    "keep_alive_timeout": ("LADLE_KEEP_ALIVE_TIMEOUT", float),
    "graceful_timeout": ("LADLE_GRACEFUL_TIMEOUT", float),
    "registry_ttl_sec": ("LADLE_REGISTRY_TTL_SEC", float),
    "key": ("LADLE_KEY", str),
    "cert": ("LADLE_CERT", str),
    "metrics": ("LADLE_METRICS", _boolean),
    "metrics_port": ("LADLE_METRICS_PORT", int),
    "access_log": ("LADLE_ACCESS_LOG", _boolean),
    "log_level": ("LADLE_LOG_LEVEL", _log_level),
}


def from_config(server: FeatureServerConfig) -> dict[str, Any]:
    """The options that feature_store.yaml sets (keys it leaves out are absent)."""
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "workers": server.workers,
        "worker_connections": server.worker_connections,
        "max_requests": server.max_requests,
        "max_requests_jitter": server.max_requests_jitter,
        "keep_alive_timeout": server.keep_alive_timeout,
        "graceful_timeout": server.graceful_timeout,
        "registry_ttl_sec": server.registry_ttl_sec,
        "key": server.tls.key if server.tls else None,
        "cert": server.tls.cert if server.tls else None,
        "metrics": server.metrics.enabled or None,
        "metrics_port": server.metrics.port,
        "access_log": server.access_log,
        "log_level": server.log_level,
    }
    return {name: value for name, value in values.items() if value is not None}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (variable, parse) in ENVIRONMENT.items():
        text = environ.get(variable)
        if not text:
            continue
        try:
            values[name] = parse(text)
        except ValueError as exc:
            raise ConfigError(f"${variable}: {exc}") from None
    return values


def resolve(
    command_line: Mapping[str, Any],
    server: FeatureServerConfig,
    environ: Mapping[str, str] | None = None,
) -> ServeOptions:
    """Merge the sources, command line first; ``None`` on the command line means unset."""
    merged: dict[str, Any] = {}
    merged.update(from_config(server))
    merged.update(from_environment(os.environ if environ is None else environ))
    merged.update({k: v for k, v in command_line.items() if v is not None})
    known = {f.name for f in fields(ServeOptions)}
    options = replace(ServeOptions(), **{k: v for k, v in merged.items() if k in known})
    check(options)
    return options


def app_access_log(server: FeatureServerConfig, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the app writes its access log: as set by `ladle serve` (through
    $LADLE_ACCESS_LOG), the environment or the yaml; off otherwise, since another ASGI
    server (hypercorn or uvicorn run directly) writes an access log of its own."""
    environment = from_environment(os.environ if environ is None else environ)
    return bool(environment.get("access_log", from_config(server).get("access_log", False)))


def check(options: ServeOptions) -> None:
    """Mistakes that would otherwise surface as a traceback inside a worker."""
    if (options.key is None) != (options.cert is None):
        raise ConfigError("TLS needs both a key and a certificate (--key and --cert)")
    for path in (options.key, options.cert):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"TLS file {path} not found")
    if options.worker_connections < 1:
        raise ConfigError("worker_connections must be at least 1")
    if options.max_requests is not None and options.max_requests < 1:
        raise ConfigError("max_requests must be at least 1 (leave it unset to never recycle)")
    if options.max_requests_jitter < 0:
        raise ConfigError("max_requests_jitter must not be negative")
    if options.keep_alive_timeout <= 0 or options.graceful_timeout < 0:
        raise ConfigError("keep_alive_timeout must be positive and graceful_timeout not negative")
    if options.workers == 0 or options.workers < -1:
        raise ConfigError("workers must be at least 1, or -1 for 2 x cores + 1")
    if not 0 < options.port < 65536 or not 0 < options.metrics_port < 65536:
        raise ConfigError("ports must be between 1 and 65535")


def effective_workers(requested: int) -> int:
    """-1 means 2 x cores + 1, the usual rule for I/O-bound workers."""
    return 2 * (os.cpu_count() or 1) + 1 if requested == -1 else max(requested, 1)
