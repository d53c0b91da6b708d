"""Per-registry-version write state: what each push source or view write produces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.on_demand import (
    OutputSlot,
    Transformation,
    TransformationFailed,
    TransformStep,
    call_transformation,
)
from registry.model import (
    FeatureViewSpec,
    FileSourceSpec,
    OnDemandFeatureViewSpec,
    PushSourceSpec,
    RegistrySnapshot,
)
from stores.base import WriteRow
from stores.codec import normalizer
from stores.columns import ColumnSpec
from stores.offline import FileOfflineStore
from stores.precompute import VectorLayout, ViewVectors, vector_layouts
from stores.writes import RecordWriter, ViewWriter, merged_columns


class OnDemandWriter:
    """Computes an on-demand view with ``write_to_online_store=True`` from written rows.

    The rows must carry every input: the source features and the request fields.
    """

    def __init__(
        self, project: str, spec: OnDemandFeatureViewSpec, udf: Transformation,
        views: Mapping[str, FeatureViewSpec], vectors: ViewVectors | None = None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self.vectors = vectors
        self.base = ViewWriter(project, views[spec.sources[0].view])
        self.inputs = [
            (f, f"{p.view}__{f}", views[p.view].feature(f))
            for p in spec.sources
            for f in p.features
        ]
        self.columns: list[ColumnSpec] = [
            *self.base.columns[: len(spec.join_keys) + 1],  # join keys and event time
            *(ColumnSpec(name, field.dtype) for name, _, field in self.inputs if field),
            *(ColumnSpec(f.name, f.dtype) for f in spec.request_fields),
        ]
        self.step = TransformStep(
            spec.name,
            udf,
            spec.singleton,
            (),
            tuple(f.name for f in spec.request_fields),
            tuple(OutputSlot(f.name, -1, normalizer(f.dtype), None) for f in spec.features),
        )

    def rows(self, columns: dict[str, list[Any]], count: int) -> list[WriteRow]:
        inputs: dict[str, list[Any]] = {}
        for name, full_name, _ in self.inputs:
            inputs[name] = inputs[full_name] = columns[name]
        for field in self.spec.request_fields:
            inputs[field.name] = columns[field.name]
        for key in self.spec.join_keys:
            inputs[key.name] = columns[key.name]
        ready = [r for r in range(count) if all(v[r] is not None for v in inputs.values())]
        produced = call_transformation(self.step, inputs, ready) if ready else {}
        outputs: list[tuple[str, list[Any]]] = []
        for slot in self.step.outputs:
            values: list[Any] = [None] * count
            for row, value in zip(ready, produced.get(slot.feature, []), strict=True):
                try:
                    values[row] = slot.normalize(value)
                except (ValueError, TypeError, OverflowError) as exc:
                    problem = f"output {slot.feature!r}: {exc}"
                    raise TransformationFailed(self.spec.name, problem) from None
            outputs.append((slot.feature, values))
        return self.base.records(self.spec.name, outputs, columns, count, self.vectors)


class WriteTarget:
    """Everything one write produces records for: views, and on-demand views computed
    from them at write time."""

    def __init__(self, writers: list[RecordWriter], batch_source: FileSourceSpec | None) -> None:
        self.writers = writers
        self.columns = merged_columns(writers)
        self.batch_source = batch_source

    def rows(self, columns: dict[str, list[Any]], count: int) -> list[WriteRow]:
        return [row for writer in self.writers for row in writer.rows(columns, count)]


class WriterCache:
    def __init__(self, offline: FileOfflineStore) -> None:
        self.offline = offline
        self.snapshot: RegistrySnapshot | None = None
        self.transformations: Mapping[str, Transformation] = {}
        self._views: dict[str, WriteTarget] = {}
        self._pushes: dict[str, WriteTarget] = {}
        self._source_types: dict[str, dict[str, str]] = {}
        self._layouts: list[VectorLayout] = []

    def reset(
        self, snapshot: RegistrySnapshot, transformations: Mapping[str, Transformation]
    ) -> None:
        self.snapshot = snapshot
        self.transformations = transformations
        self._views, self._pushes, self._source_types = {}, {}, {}
        self._layouts = list(vector_layouts(snapshot).values())

    def _target(self, views: list[FeatureViewSpec], batch: FileSourceSpec | None) -> WriteTarget:
        assert self.snapshot is not None
        project = self.snapshot.project
        layouts = self._layouts
        writers: list[RecordWriter] = [
            ViewWriter(project, view, ViewVectors(layouts, view.name)) for view in views
        ]
        names = {view.name for view in views}
        for spec in self.snapshot.on_demand_feature_views.values():
            if spec.write_to_online_store and names & {p.view for p in spec.sources}:
                udf = self.transformations[spec.name]
                vectors = ViewVectors(layouts, spec.name)
                writers.append(
                    OnDemandWriter(project, spec, udf, self.snapshot.feature_views, vectors)
                )
        return WriteTarget(writers, batch)

    def view(self, name: str) -> WriteTarget | None:
        target = self._views.get(name)
        if target is None and self.snapshot is not None:
            spec = self.snapshot.feature_views.get(name)
            if spec is not None:
                target = self._views[name] = self._target([spec], None)
        return target

    def push_target(self, name: str) -> WriteTarget | None:
        target = self._pushes.get(name)
        if target is None and self.snapshot is not None:
            views = [
                v
                for v in self.snapshot.feature_views.values()
                if isinstance(v.source, PushSourceSpec) and v.source.name == name
            ]
            if views:
                source = views[0].source
                assert isinstance(source, PushSourceSpec)
                target = self._pushes[name] = self._target(views, source.batch_source)
        return target

    def source_types(self, source: FileSourceSpec) -> dict[str, str]:
        """The batch source's column types, read once per registry version."""
        types = self._source_types.get(source.path)
        if types is None:
            types = self._source_types[source.path] = self.offline.describe(source)
        return types
