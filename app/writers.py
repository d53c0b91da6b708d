"""Per-registry-version write state: view writers, push source fan-out, source schemas."""

from __future__ import annotations

from collections.abc import Mapping

from app.on_demand import Transformation
from registry.model import FeatureViewSpec, FileSourceSpec, PushSourceSpec, RegistrySnapshot
from stores.columns import ColumnSpec
from stores.offline import FileOfflineStore
from stores.writes import ViewWriter, merged_columns


class PushTarget:
    """Everything one push source writes to."""

    def __init__(self, project: str, name: str, views: list[FeatureViewSpec]) -> None:
        self.name = name
        self.writers = [ViewWriter(project, view) for view in views]
        self.columns: list[ColumnSpec] = merged_columns(self.writers)
        source = views[0].source
        assert isinstance(source, PushSourceSpec)
        self.batch_source = source.batch_source


class WriterCache:
    def __init__(self, offline: FileOfflineStore) -> None:
        self.offline = offline
        self.snapshot: RegistrySnapshot | None = None
        self.transformations: Mapping[str, Transformation] = {}
        self._views: dict[str, ViewWriter] = {}
        self._pushes: dict[str, PushTarget] = {}
        self._source_types: dict[str, dict[str, str]] = {}

    def reset(
        self, snapshot: RegistrySnapshot, transformations: Mapping[str, Transformation]
    ) -> None:
        self.snapshot = snapshot
        self.transformations = transformations
        self._views, self._pushes, self._source_types = {}, {}, {}

    def view(self, name: str) -> ViewWriter | None:
        writer = self._views.get(name)
        if writer is None and self.snapshot is not None:
            spec = self.snapshot.feature_views.get(name)
            if spec is not None:
                writer = self._views[name] = ViewWriter(self.snapshot.project, spec)
        return writer

    def push_target(self, name: str) -> PushTarget | None:
        target = self._pushes.get(name)
        if target is None and self.snapshot is not None:
            views = [
                v
                for v in self.snapshot.feature_views.values()
                if isinstance(v.source, PushSourceSpec) and v.source.name == name
            ]
            if views:
                target = self._pushes[name] = PushTarget(self.snapshot.project, name, views)
        return target

    def source_types(self, source: FileSourceSpec) -> dict[str, str]:
        """The batch source's column types, read once per registry version."""
        types = self._source_types.get(source.path)
        if types is None:
            types = self._source_types[source.path] = self.offline.describe(source)
        return types
