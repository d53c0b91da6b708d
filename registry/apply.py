"""``ladle apply``: load the repo, check it against its data, write the registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.backend import RegistryBackend
from registry.compile import CompiledRepo, compile_repo
from registry.config import RepoSettings
from registry.factory import open_registry
from registry.model import FeatureServiceSpec, OnDemandFeatureViewSpec, RegistrySnapshot
from registry.repo import load_definitions
from stores import vectors
from stores.offline import FileOfflineStore
from stores.precompute import vector_layouts


@dataclass
class ApplyReport:
    snapshot: RegistrySnapshot
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: Views (and precomputed vector fields) whose online records should be dropped.
    deleted_views: list[str] = field(default_factory=list)
    #: Services with precompute_online whose vectors are not built for their definition.
    needs_precompute: list[str] = field(default_factory=list)


def _diff(kind: str, old: dict[str, object], new: dict[str, object], report: ApplyReport) -> None:
    for name, spec in new.items():
        if name not in old:
            report.created.append(f"{kind} {name}")
        elif old[name] != spec:
            report.updated.append(f"{kind} {name}")
    report.deleted += [f"{kind} {name}" for name in old if name not in new]


def _written_odfvs(odfvs: dict[str, OnDemandFeatureViewSpec]) -> list[str]:
    """On-demand views whose values are stored, like a feature view's."""
    return [name for name, spec in odfvs.items() if spec.write_to_online_store]


def _written(snapshot: RegistrySnapshot) -> list[str]:
    return _written_odfvs(snapshot.on_demand_feature_views)


async def apply_repo(
    settings: RepoSettings, registry: RegistryBackend | None = None
) -> ApplyReport:
    """Raise RepoError on any problem; otherwise replace the registry and report changes.

    The repo is checked before the registry is touched; the write itself is one atomic
    update, so a concurrent apply or materialization record is never lost. Without a
    ``registry``, the repo's own is opened and closed again.
    """
    offline = FileOfflineStore(settings.root)
    compiled = compile_repo(load_definitions(settings.root), offline.describe)
    if registry is not None:
        return await _write(settings, compiled, registry)
    backend = open_registry(settings)
    try:
        return await _write(settings, compiled, backend)
    finally:
        await backend.close()


async def _write(
    settings: RepoSettings, compiled: CompiledRepo, registry: RegistryBackend
) -> ApplyReport:
    project = settings.config.project
    holder: list[ApplyReport] = []

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        if current is not None and current.project != project:
            current = None  # another project's registry: start over
        old = current or RegistrySnapshot(project=project, version=0, updated_at="")
        placeholder = ApplyReport(snapshot=old)
        _diff("entity", dict(old.entities), dict(compiled.entities), placeholder)
        _diff("feature view", dict(old.feature_views), dict(compiled.feature_views), placeholder)
        _diff(
            "on-demand feature view",
            dict(old.on_demand_feature_views),
            dict(compiled.on_demand_feature_views),
            placeholder,
        )
        _diff(
            "feature service",
            dict(old.feature_services),
            dict(compiled.feature_services),
            placeholder,
        )
        _diff("permission", dict(old.permissions), dict(compiled.permissions), placeholder)
        stored_before = [*old.feature_views, *_written(old)]
        stored_now = {*compiled.feature_views, *_written_odfvs(compiled.on_demand_feature_views)}
        placeholder.deleted_views = [v for v in stored_before if v not in stored_now]
        placeholder.deleted_views += [
            vectors.field_for(name)
            for name, spec in old.feature_services.items()
            if spec.precompute_online and not _precomputed(compiled.feature_services.get(name))
        ]
        holder.append(placeholder)
        kept = {
            name: window
            for name, window in old.materializations.items()
            if name in compiled.feature_views
            and old.feature_views[name] == compiled.feature_views[name]
        }
        return RegistrySnapshot(
            project=project,
            version=old.version,
            updated_at="",
            entities=compiled.entities,
            feature_views=compiled.feature_views,
            feature_services=compiled.feature_services,
            on_demand_feature_views=compiled.on_demand_feature_views,
            materializations=kept,
            permissions=compiled.permissions,
            precomputed={
                name: fingerprint
                for name, fingerprint in old.precomputed.items()
                if _precomputed(compiled.feature_services.get(name))
            },
        )

    snapshot = await registry.update(change, replace_corrupt=True)
    report = holder[-1]
    report.snapshot = snapshot
    report.needs_precompute = [
        name
        for name, layout in vector_layouts(snapshot).items()
        if snapshot.precomputed.get(name) != layout.fingerprint
    ]
    return report


def _precomputed(service: FeatureServiceSpec | None) -> bool:
    return service is not None and service.precompute_online
