"""What one worker holds while serving: config, registry, online store and plans."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from app import serve_options
from app.auth import Auth, create_auth
from app.deadlines import Deadlines
from app.metrics import Metrics
from app.offline_batcher import OfflineBatcher
from app.process_sampler import ProcessSampler
from app.resolve import PlanCache
from app.startup import startup_retry_seconds, with_retries
from app.transformations import load_transformations
from app.writers import WriterCache
from registry.backend import RegistryBackend, RegistryUnavailable
from registry.config import LimitsConfig, MetricsConfig, RepoSettings, load_repo_config
from registry.factory import open_registry
from registry.model import RegistrySnapshot
from registry.refresh import RegistryRefresher
from stores.base import OnlineStore, StoreUnavailable
from stores.factory import create_online_store
from stores.offline import FileOfflineStore
from stores.offline_write import append_rows
from stores.timed import TimedStore

log = logging.getLogger("ladle.server")
REPO_ENV = "LADLE_REPO"
#: At shutdown, how long ?async=true materializations may go on (an interrupted one is not
#: recorded, so the next incremental run covers its window again).
MATERIALIZE_DRAIN_SECONDS = 20.0


def find_repo(explicit: str | Path | None = None) -> Path:
    """The repo to serve: the argument, else $LADLE_REPO, else the working directory."""
    return Path(explicit or os.environ.get(REPO_ENV) or os.getcwd())


def registry_interval(settings: RepoSettings, explicit: float | None = None) -> float:
    """The argument, else $LADLE_REGISTRY_TTL_SEC, else feature_server.registry_ttl_sec,
    else registry.cache_ttl_seconds: the precedence of every serve option."""
    if explicit is not None:
        return explicit
    chosen = serve_options.from_environment(os.environ).get(
        "registry_ttl_sec", settings.config.feature_server.registry_ttl_sec
    )
    return settings.config.registry_config.cache_ttl_seconds if chosen is None else float(chosen)


def _definitions(snapshot: RegistrySnapshot) -> tuple[object, ...]:
    """What plans and writers are built from; not the version or materialization windows."""
    return (
        snapshot.project,
        snapshot.entities,
        snapshot.feature_views,
        snapshot.feature_services,
        snapshot.on_demand_feature_views,
        snapshot.precomputed,
    )


@dataclass
class ServingState:
    settings: RepoSettings
    store: OnlineStore
    offline: FileOfflineStore
    registry: RegistryBackend
    refresher: RegistryRefresher
    plans: PlanCache
    writers: WriterCache
    metrics: Metrics = field(default_factory=lambda: Metrics(MetricsConfig()))
    #: Set when feature_server.offline_push_batching_enabled is on.
    batcher: OfflineBatcher | None = None
    #: CPU, memory and freshness gauges, sampled while metrics are on.
    sampler: ProcessSampler | None = None
    #: Background materializations started with ?async=true.
    tasks: set[asyncio.Task[object]] = field(default_factory=set)
    #: Set when auth is oidc; None (no_auth) means endpoints take no auth step.
    auth: Auth | None = None
    #: Request-body deadlines on the serving loop (set by start()).
    deadlines: Deadlines = field(init=False)

    @property
    def snapshot(self) -> RegistrySnapshot | None:
        return self.refresher.snapshot

    @property
    def limits(self) -> LimitsConfig:
        return self.settings.config.feature_server.limits

    @property
    def project(self) -> str:
        return self.settings.config.project

    @classmethod
    def from_repo(cls, repo: str | Path | None, registry_ttl_sec: float | None) -> ServingState:
        settings = load_repo_config(find_repo(repo))
        offline = FileOfflineStore(settings.root)
        plans, writers = PlanCache(), WriterCache(offline)

        served: list[object] = [None]

        def on_change(snapshot: RegistrySnapshot) -> None:
            definitions = _definitions(snapshot)
            if definitions == served[0]:
                # Only bookkeeping changed (materialization windows): plans stay valid.
                plans.snapshot = writers.snapshot = snapshot
                return
            # Raises if the repo's transformations do not match: the refresher then keeps
            # serving the previous snapshot (and startup fails).
            transformations = load_transformations(settings.root, snapshot)
            plans.reset(snapshot, transformations)
            writers.reset(snapshot, transformations)
            served[0] = definitions

        registry = open_registry(settings)
        refresher = RegistryRefresher(
            registry, registry_interval(settings, registry_ttl_sec), on_change=on_change
        )
        server = settings.config.feature_server
        batcher = (
            OfflineBatcher(
                append_rows,
                server.offline_push_batching_batch_size,
                server.offline_push_batching_batch_interval_seconds,
            )
            if server.offline_push_batching_enabled
            else None
        )
        metrics = Metrics(server.metrics)
        store = create_online_store(settings)
        if metrics.enabled:
            store = TimedStore(store, metrics.store_time)
        return cls(
            settings,
            store,
            offline,
            registry,
            refresher,
            plans,
            writers,
            metrics,
            batcher,
            auth=create_auth(settings, lambda: refresher.snapshot),
        )

    async def start(self) -> None:
        """Load the registry and open the store, each tried again for a bounded time if
        it cannot be reached; then start the background upkeep."""
        self.deadlines = Deadlines(asyncio.get_running_loop())
        if self.auth is not None:  # first: a JWKS file that cannot be used stops the worker
            await self.auth.start()
        budget = startup_retry_seconds()
        try:
            await with_retries(
                f"loading the registry from {self.registry.describe()}",
                self.refresher.load_initial,
                (RegistryUnavailable,),
                budget,
            )
            await with_retries(
                "opening the online store", self.store.start, (StoreUnavailable,), budget
            )
        except BaseException:
            await self.registry.close()
            if self.auth is not None:
                await self.auth.stop()
            raise
        self.refresher.start()
        if self.batcher is not None:
            self.batcher.start()
        if self.metrics.enabled:
            self.sampler = ProcessSampler(self.metrics, self.project, lambda: self.snapshot)
            await self.sampler.sample()
            self.sampler.start()

    async def stop(self) -> None:
        """Flush acknowledged offline rows first (nothing may outrank them), give background
        materializations a bounded time to finish, then close everything."""
        if self.batcher is not None:
            await self.batcher.stop()
        if self.tasks:
            _, running = await asyncio.wait(self.tasks, timeout=MATERIALIZE_DRAIN_SECONDS)
            for task in running:
                log.warning("stopping: a background materialization did not finish; cancelled")
                task.cancel()
            if running:
                await asyncio.wait(running)
        await self.refresher.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.auth is not None:
            await self.auth.stop()
        await self.store.close()
        await self.registry.close()
        self.deadlines.close()
