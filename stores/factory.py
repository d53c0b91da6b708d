"""Build the online store a repo's config names."""

from __future__ import annotations

from registry.config import RedisOnlineStoreConfig, RepoSettings, SqliteOnlineStoreConfig
from stores.base import OnlineStore
from stores.redis_store import RedisOnlineStore
from stores.sqlite import SqliteOnlineStore


def create_online_store(settings: RepoSettings) -> OnlineStore:
    config = settings.config.online_store
    if isinstance(config, SqliteOnlineStoreConfig):
        return SqliteOnlineStore(settings.resolve(config.path))
    if isinstance(config, RedisOnlineStoreConfig):
        return RedisOnlineStore(
            config.connection_string,
            config.key_ttl_seconds,
            socket_timeout=config.timeout_seconds,
        )
    raise TypeError(f"unsupported online store config {config!r}")
