"""``feature_store.yaml``: parsed strictly, with ``${ENV_VAR}`` substitution.

Every mistake is reported as a :class:`ConfigError` that names the file and the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from registry.auth_config import AuthConfig, NoAuthConfig, with_default_auth_type
from registry.dsn import DsnError, normalize

CONFIG_FILE = "feature_store.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


class ConfigError(Exception):
    """A feature repo's configuration cannot be used as written."""


class SqliteOnlineStoreConfig(
    msgspec.Struct, tag="sqlite", forbid_unknown_fields=True, frozen=True
):
    path: str = "data/online_store.db"


class RedisOnlineStoreConfig(msgspec.Struct, tag="redis", forbid_unknown_fields=True, frozen=True):
    connection_string: str = "localhost:6379"
    redis_type: Literal["redis"] = "redis"
    key_ttl_seconds: int | None = None
    #: Bounds each read or write: past it the request fails with 503 instead of waiting.
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 2.0


OnlineStoreConfig = SqliteOnlineStoreConfig | RedisOnlineStoreConfig


class FileOfflineStoreConfig(msgspec.Struct, tag="file", forbid_unknown_fields=True, frozen=True):
    pass


class DuckDBOfflineStoreConfig(
    msgspec.Struct, tag="duckdb", forbid_unknown_fields=True, frozen=True
):
    pass


OfflineStoreConfig = FileOfflineStoreConfig | DuckDBOfflineStoreConfig


class RegistryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: The file (relative to the repo), or for ``sql`` a ``postgresql://`` URL.
    path: str = "data/registry.db"
    registry_type: Literal["file", "sql"] = "file"
    #: How often servers check the registry for a new version, in seconds.
    cache_ttl_seconds: float = 5.0


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Prometheus metrics (``ladle serve --metrics`` turns them on too); each category
    can be switched off."""

    enabled: bool = False
    request: bool = True
    online_features: bool = True
    push: bool = True
    materialization: bool = True
    transformations: bool = True
    #: Port of the metrics endpoint (`ladle serve --metrics-port`); 8000 when unset.
    port: int | None = None


class TlsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """PEM files for HTTPS; paths are taken as written (relative to where the server runs)."""

    key: str
    cert: str


Positive = Annotated[int, msgspec.Meta(ge=1)]


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What one request may ask for; past a limit the answer is 413 or 422, never a 500."""

    max_body_bytes: Positive = 16 * 1024 * 1024
    max_entity_rows: Positive = 10_000
    max_features: Positive = 1_000
    #: Rows of one /push or /write-to-online-store; one write is one atomic Redis script,
    #: and Redis answers no one else while it runs (about 2 us per row).
    max_write_rows: Positive = 10_000
    #: Arrays and objects inside each other, the body's top level counting as 1. Map and
    #: Json values nest inside a request, so leave them room.
    max_nesting_depth: Positive = 32
    #: Seconds a client has to send a request's body once its headers are in.
    body_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0


class FeatureServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: Literal["local", "http"] = "local"
    enabled: bool = True
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    registry_ttl_sec: float | None = None
    #: Serve options (see app/serve_options.py); unset means the command line's default.
    worker_connections: int | None = None
    max_requests: int | None = None
    max_requests_jitter: int | None = None
    keep_alive_timeout: float | None = None
    graceful_timeout: float | None = None
    tls: TlsConfig | None = None
    access_log: bool | None = None
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    #: Buffer offline pushes and write them in batches (POST /push then answers 202).
    offline_push_batching_enabled: bool = False
    offline_push_batching_batch_size: int = 1000
    offline_push_batching_batch_interval_seconds: float = 10.0
    metrics: MetricsConfig = MetricsConfig()
    limits: LimitsConfig = LimitsConfig()


class RepoConfig(msgspec.Struct, forbid_unknown_fields=True):
    project: str
    registry: str | RegistryConfig = "data/registry.db"
    provider: Literal["local"] = "local"
    online_store: OnlineStoreConfig = SqliteOnlineStoreConfig()
    offline_store: OfflineStoreConfig = FileOfflineStoreConfig()
    entity_key_serialization_version: int = 3
    feature_server: FeatureServerConfig = FeatureServerConfig()
    #: Who may call the server (see registry/auth_config.py); absent means no_auth.
    auth: AuthConfig = NoAuthConfig()

    @property
    def registry_config(self) -> RegistryConfig:
        if isinstance(self.registry, str):
            return RegistryConfig(path=self.registry)
        return self.registry


class RepoSettings(msgspec.Struct, frozen=True):
    """A parsed config together with the folder that relative paths are resolved from."""

    root: Path
    config: RepoConfig

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    @property
    def registry_path(self) -> Path:
        return self.resolve(self.config.registry_config.path)


def load_repo_config(repo: Path | str) -> RepoSettings:
    """Read ``feature_store.yaml`` from a repo folder (or the file itself)."""
    path = Path(repo)
    if path.is_dir():
        path = path / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (a feature repo needs a {CONFIG_FILE})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    raw = _substitute_env(raw, path, ())
    return RepoSettings(root=path.parent.resolve(), config=parse_repo_config(raw, str(path)))


def parse_repo_config(raw: dict[str, Any], origin: str) -> RepoConfig:
    """Validate an already-loaded mapping; ``origin`` names it in errors."""
    online = raw.get("online_store")
    if isinstance(online, dict) and "type" not in online:
        raw = {**raw, "online_store": {"type": "sqlite", **online}}
    raw = with_default_auth_type(raw)
    try:
        config = msgspec.convert(raw, RepoConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{origin}: {_describe(exc)}") from None
    if not re.fullmatch(r"[A-Za-z0-9_]+", config.project):
        raise ConfigError(
            f"{origin}: project: {config.project!r} may hold only letters, digits and underscores"
        )
    registry = config.registry_config
    if registry.registry_type == "sql":
        try:
            normalize(registry.path)
        except DsnError as exc:  # its message holds no password
            raise ConfigError(f"{origin}: registry.path: {exc}") from None
    return config


def _describe(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    match = _MSGSPEC_PATH.search(message)
    # msgspec names no path for mistakes in the top-level mapping itself.
    key = match.group("path").lstrip(".").replace("`", "") if match else ""
    text = message[: match.start()] if match else message
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", text)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        return f"{key}: unknown key"
    missing = re.fullmatch(r"Object missing required field `(.+)`", text)
    if missing:
        key = f"{key}.{missing.group(1)}" if key else missing.group(1)
        return f"{key}: required key is missing"
    return f"{key}: {text}" if key else text


def _substitute_env(value: Any, origin: Path, where: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, origin, (*where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, origin, (*where, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                key = ".".join(where)
                raise ConfigError(f"{origin}: {key}: environment variable ${{{name}}} is not set")
            return os.environ[name]

        substituted = _ENV_REF.sub(lookup, value)
        if _ENV_REF.fullmatch(value):
            # A value that is only a reference takes the variable's YAML type, so that
            # `key_ttl_seconds: ${TTL}` gives a number.
            try:
                parsed = yaml.safe_load(substituted)
            except yaml.YAMLError:
                return substituted
            return parsed if isinstance(parsed, int | float | bool) else substituted
        return substituted
    return value
