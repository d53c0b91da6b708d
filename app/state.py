"""What one worker holds while serving: config, registry, online store and plans."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.resolve import PlanCache
from registry.config import RepoSettings, load_repo_config
from registry.file_registry import FileRegistry
from registry.model import RegistrySnapshot
from registry.refresh import RegistryRefresher
from stores.base import OnlineStore
from stores.factory import create_online_store

REPO_ENV = "LADLE_REPO"
REGISTRY_TTL_ENV = "LADLE_REGISTRY_TTL_SEC"


def find_repo(explicit: str | Path | None = None) -> Path:
    """The repo to serve: the argument, else $LADLE_REPO, else the working directory."""
    return Path(explicit or os.environ.get(REPO_ENV) or os.getcwd())


def registry_interval(settings: RepoSettings, explicit: float | None = None) -> float:
    if explicit is not None:
        return explicit
    if os.environ.get(REGISTRY_TTL_ENV):
        return float(os.environ[REGISTRY_TTL_ENV])
    configured = settings.config.feature_server.registry_ttl_sec
    if configured is not None:
        return configured
    return settings.config.registry_config.cache_ttl_seconds


@dataclass
class ServingState:
    settings: RepoSettings
    store: OnlineStore
    refresher: RegistryRefresher
    plans: PlanCache = field(default_factory=PlanCache)

    @property
    def snapshot(self) -> RegistrySnapshot | None:
        return self.refresher.snapshot

    @classmethod
    def from_repo(cls, repo: str | Path | None, registry_ttl_sec: float | None) -> ServingState:
        settings = load_repo_config(find_repo(repo))
        plans = PlanCache()
        refresher = RegistryRefresher(
            FileRegistry(settings.registry_path),
            registry_interval(settings, registry_ttl_sec),
            on_change=plans.reset,
        )
        return cls(settings, create_online_store(settings), refresher, plans)

    async def start(self) -> None:
        await self.refresher.load_initial()
        await self.store.start()
        self.refresher.start()

    async def stop(self) -> None:
        await self.refresher.stop()
        await self.store.close()
