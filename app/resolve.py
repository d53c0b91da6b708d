"""Resolve a request's feature selection into a read plan, once per registry version.

A plan holds everything about a request that does not depend on its entity values: the
output columns and their names, which views to read under which entity keys, the key
encoders, the TTLs and the value converters. Plans are cached by request shape, so the
hot path does no name lookups at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from app.entities import Coercer, coercer, request_coercer
from app.errors import ApiError
from app.on_demand import OutputSlot, Transformation, TransformStep
from app.precomputed import PrecomputedRead, precomputed_read
from app.schemas import FeatureViewMetadata, ResponseMetadata
from registry.model import FeatureViewSpec, OnDemandFeatureViewSpec, RegistrySnapshot
from stores.codec import (
    ColumnConverter,
    OutputConverter,
    column_converter,
    normalizer,
    output_converter,
)
from stores.keys import KeyEncoder, make_key_encoder


@dataclass(frozen=True, slots=True)
class FeatureSlot:
    """One output column fed by a stored feature."""

    feature: str
    column: int
    convert: OutputConverter | None
    #: The same conversion for a whole column without nulls (the usual case, faster).
    convert_column: ColumnConverter | None = None


@dataclass(frozen=True, slots=True)
class ViewRead:
    view: str
    ttl_us: int
    slots: tuple[FeatureSlot, ...]
    #: A record's values for ``slots``, as a tuple (KeyError if one is not in it).
    values_of: Callable[[dict[str, Any]], tuple[Any, ...]]
    #: The slots' output columns when they are consecutive (one slice fills them).
    first_column: int | None
    #: (position in ``slots``, whole-column converter) for the slots that need one.
    column_converters: tuple[tuple[int, ColumnConverter], ...]

    @classmethod
    def of(cls, view: str, ttl_us: int, slots: tuple[FeatureSlot, ...]) -> ViewRead:
        names = [slot.feature for slot in slots]
        values_of: Callable[[dict[str, Any]], tuple[Any, ...]]
        if len(names) == 1:
            (name,) = names
            values_of = lambda record: (record[name],)  # noqa: E731
        else:
            values_of = itemgetter(*names)
        columns = [slot.column for slot in slots]
        consecutive = columns == list(range(columns[0], columns[0] + len(columns)))
        return cls(
            view,
            ttl_us,
            slots,
            values_of,
            columns[0] if consecutive else None,
            tuple(
                (i, slot.convert_column)
                for i, slot in enumerate(slots)
                if slot.convert_column is not None
            ),
        )


@dataclass(frozen=True, slots=True)
class KeyGroup:
    """Views that share join keys, and so share one stored record per entity."""

    key_columns: tuple[int, ...]  # positions in ReadPlan.entity_names
    encode: KeyEncoder
    views: tuple[ViewRead, ...]
    view_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    #: The request's entity columns (join keys and request data), in request order.
    entity_names: tuple[str, ...]
    coercers: tuple[Coercer, ...]
    groups: tuple[KeyGroup, ...]
    transforms: tuple[TransformStep, ...]
    #: Columns worked on: entity columns, then each feature read or computed.
    column_count: int
    #: The columns the response shows, in order; None means all of them.
    output_columns: tuple[int, ...] | None
    metadata: ResponseMetadata
    #: With transforms, stored values reach them unconverted (a float NaN, not "NaN");
    #: these (column, converter) pairs convert the shown columns afterwards.
    late_converts: tuple[tuple[int, OutputConverter], ...] = ()
    #: feature_count and feature_view_count, as the latency metric labels them.
    metric_labels: tuple[str, str] = ("", "")
    #: Set for a feature service with precompute_online: read its vectors instead.
    precomputed: PrecomputedRead | None = None


PlanKey = tuple[tuple[str, ...], str | None, bool, tuple[str, ...], bool]


def _parse_reference(ref: str, index: int) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise ApiError(
            422,
            "invalid_feature_reference",
            ["body", "features", index],
            f"{ref!r} is not a feature reference; expected 'feature_view:feature'",
            ref,
        )
    if "@" in view:
        raise ApiError(
            422,
            "invalid_feature_reference",
            ["body", "features", index],
            f"{ref!r}: feature view versions ('view@vN') are not supported",
            ref,
        )
    return view, feature


Readable = FeatureViewSpec | OnDemandFeatureViewSpec


def _readable(snapshot: RegistrySnapshot, name: str) -> Readable | None:
    return snapshot.feature_views.get(name) or snapshot.on_demand_feature_views.get(name)


def _selection(
    snapshot: RegistrySnapshot, features: Sequence[str], service: str | None
) -> list[tuple[Readable, str, list[str | int]]]:
    """(view, feature, loc for errors) for every requested feature, in output order."""
    if service is not None:
        if features:
            raise ApiError(
                422,
                "conflict",
                ["body", "features"],
                "give either features or feature_service, not both",
            )
        spec = snapshot.feature_services.get(service)
        if spec is None:
            raise ApiError(
                404,
                "feature_service_not_found",
                ["body", "feature_service"],
                f"feature service {service!r} does not exist in project {snapshot.project!r}",
                service,
            )
        loc: list[str | int] = ["body", "feature_service"]
        selection: list[tuple[Readable, str, list[str | int]]] = []
        for projection in spec.projections:
            readable = _readable(snapshot, projection.view)
            assert readable is not None  # apply checked the service
            selection += [(readable, f, loc) for f in projection.features]
        return selection
    if not features:
        raise ApiError(
            422,
            "empty",
            ["body", "features"],
            "must list at least one 'feature_view:feature', or give a feature_service",
        )
    selected = []
    seen: set[str] = set()
    for index, ref in enumerate(features):
        view_name, feature = _parse_reference(ref, index)
        loc = ["body", "features", index]
        view = _readable(snapshot, view_name)
        if view is None:
            raise ApiError(
                404,
                "feature_view_not_found",
                loc,
                f"feature view {view_name!r} does not exist in project {snapshot.project!r}",
                ref,
            )
        if view.feature(feature) is None:
            raise ApiError(
                404,
                "feature_not_found",
                loc,
                f"feature view {view_name!r} has no feature {feature!r}",
                ref,
            )
        if not view.online:
            raise ApiError(
                422,
                "feature_view_offline",
                loc,
                f"feature view {view_name!r} is not served online (online=False)",
                ref,
            )
        if ref in seen:
            raise ApiError(422, "duplicate_feature", loc, f"{ref!r} is requested twice", ref)
        seen.add(ref)
        selected.append((view, feature, loc))
    return selected


def build_plan(
    snapshot: RegistrySnapshot,
    features: Sequence[str],
    service: str | None,
    full_names: bool,
    entity_names: Sequence[str],
    include_view_metadata: bool,
    transformations: Mapping[str, Transformation] | None = None,
) -> ReadPlan:
    selection = _selection(snapshot, features, service)
    plan = _PlanBuilder(snapshot, entity_names, transformations or {}).build(
        selection, full_names, include_view_metadata
    )
    spec = snapshot.feature_services.get(service) if service is not None else None
    if spec is not None and spec.precompute_online:
        # Apply made sure every view is stored under the same join keys: one group.
        (group,) = plan.groups
        read = precomputed_read(snapshot, spec, group.key_columns, group.encode, plan.metadata)
        plan = dataclasses.replace(plan, precomputed=read)
    return plan


class _PlanBuilder:
    """Columns are numbered in one space: the request's entity columns first, then every
    feature read or computed. The response shows a subset (no request data, no inputs
    that were read only to feed a transformation)."""

    def __init__(
        self,
        snapshot: RegistrySnapshot,
        entity_names: Sequence[str],
        transformations: Mapping[str, Transformation],
    ) -> None:
        self.snapshot = snapshot
        self.entity_names = list(entity_names)
        self.transformations = transformations
        self.column_count = len(entity_names)
        self.slots: dict[tuple[str, str], FeatureSlot] = {}  # (view, feature) -> slot
        self.stored: dict[str, Readable] = {}  # views read from the store, in order
        self.key_types: dict[str, str] = {}
        self.request_types: dict[str, tuple[str, str]] = {}  # field -> (dtype, odfv)

    def _column(self) -> int:
        self.column_count += 1
        return self.column_count - 1

    def read_slot(self, view: Readable, feature: str) -> FeatureSlot:
        slot = self.slots.get((view.name, feature))
        if slot is None:
            field = view.feature(feature)
            assert field is not None
            slot = FeatureSlot(
                feature,
                self._column(),
                output_converter(field.dtype),
                column_converter(field.dtype),
            )
            self.slots[(view.name, feature)] = slot
            self.stored.setdefault(view.name, view)
            for key in view.join_keys:
                self.key_types.setdefault(key.name, key.dtype)
        return slot

    def build(
        self,
        selection: list[tuple[Readable, str, list[str | int]]],
        full_names: bool,
        include_view_metadata: bool,
    ) -> ReadPlan:
        names: list[str] = []
        output_features: list[int] = []
        computed: dict[str, list[tuple[str, int]]] = {}
        for view, feature, loc in selection:
            name = f"{view.name}__{feature}" if full_names else feature
            if name in names or name in self.entity_names:
                raise ApiError(
                    422,
                    "name_collision",
                    loc,
                    f"two requested columns are both named {name!r}; "
                    "set full_feature_names to true to tell them apart",
                )
            names.append(name)
            if isinstance(view, OnDemandFeatureViewSpec) and not view.write_to_online_store:
                column = self._column()
                computed.setdefault(view.name, []).append((feature, column))
            else:
                column = self.read_slot(view, feature).column
            output_features.append(column)
        steps = [self.transform_step(name, outputs) for name, outputs in computed.items()]
        key_columns = self.check_entities()

        position = {name: i for i, name in enumerate(self.entity_names)}
        grouped: dict[tuple[str, ...], list[ViewRead]] = {}
        for view_name, view in self.stored.items():
            slots = tuple(s for (v, _), s in self.slots.items() if v == view_name)
            keys = tuple(sorted(k.name for k in view.join_keys))  # one group per key set
            ttl_us = int(view.ttl_seconds * 1_000_000)
            grouped.setdefault(keys, []).append(ViewRead.of(view_name, ttl_us, slots))
        groups = []
        for keys, reads in grouped.items():
            encoder = make_key_encoder(
                self.snapshot.project, [(k, self.key_types[k]) for k in keys]
            )
            groups.append(
                KeyGroup(
                    tuple(position[k] for k in keys),
                    encoder,
                    tuple(reads),
                    tuple(r.view for r in reads),
                )
            )

        metadata = ResponseMetadata(
            feature_names=[self.entity_names[i] for i in key_columns] + names
        )
        if include_view_metadata:
            shown = dict.fromkeys(view.name for view, _, _ in selection)
            metadata.feature_view_metadata = [FeatureViewMetadata(v) for v in shown]
        coercers = tuple(
            coercer(self.key_types[n])
            if n in self.key_types
            else request_coercer(self.request_types[n][0])
            for n in self.entity_names
        )
        output = (*key_columns, *output_features)
        late = tuple(
            (slot.column, slot.convert)
            for slot in self.slots.values()
            if steps and slot.convert is not None and slot.column in output_features
        )
        return ReadPlan(
            entity_names=tuple(self.entity_names),
            coercers=coercers,
            groups=tuple(groups),
            transforms=tuple(steps),
            column_count=self.column_count,
            output_columns=None if output == tuple(range(self.column_count)) else output,
            metadata=metadata,
            late_converts=late,
            metric_labels=(str(len(names)), str(len({v.name for v, _, _ in selection}))),
        )

    def transform_step(self, name: str, outputs: list[tuple[str, int]]) -> TransformStep:
        spec = self.snapshot.on_demand_feature_views[name]
        udf = self.transformations.get(name)
        if udf is None:
            raise ApiError(
                503,
                "transformation_unavailable",
                [],
                f"on-demand feature view {name!r} has no loaded transformation",
            )
        inputs: list[tuple[str, int]] = []
        for projection in spec.sources:
            view = self.snapshot.feature_views[projection.view]
            for feature in projection.features:
                column = self.read_slot(view, feature).column
                inputs += [(feature, column), (f"{view.name}__{feature}", column)]
        for field in spec.request_fields:
            self.request_types.setdefault(field.name, (field.dtype, name))
        request_inputs = tuple(f.name for f in spec.request_fields)
        by_feature = {f.name: f.dtype for f in spec.features}
        return TransformStep(
            name=name,
            udf=udf,
            singleton=spec.singleton,
            inputs=tuple(inputs),
            request_inputs=request_inputs,
            outputs=tuple(
                OutputSlot(f, column, normalizer(by_feature[f]), output_converter(by_feature[f]))
                for f, column in outputs
            ),
        )

    def check_entities(self) -> tuple[int, ...]:
        """Every entity column must be a needed join key or request field; returns the
        positions of the join keys (the entity columns the response shows)."""
        for name in self.entity_names:
            if name not in self.key_types and name not in self.request_types:
                expected = ", ".join(sorted({*self.key_types, *self.request_types})) or "none"
                raise ApiError(
                    422,
                    "unknown_join_key",
                    ["body", "entities", name],
                    f"{name!r} is not a join key or request field of the requested features "
                    f"(expected: {expected})",
                )
        for view in self.stored.values():
            for key in view.join_keys:
                if key.name not in self.entity_names:
                    raise ApiError(
                        422,
                        "missing_join_key",
                        ["body", "entities"],
                        f"feature view {view.name!r} needs join key {key.name!r}",
                    )
        for field, (_, odfv) in self.request_types.items():
            if field not in self.entity_names:
                raise ApiError(
                    422,
                    "missing_request_data",
                    ["body", "entities", field],
                    f"on-demand feature view {odfv!r} needs request data {field!r}",
                )
        return tuple(i for i, n in enumerate(self.entity_names) if n in self.key_types)


class PlanCache:
    """Plans by request shape for the current registry version; bounded in size."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.snapshot: RegistrySnapshot | None = None
        self.transformations: Mapping[str, Transformation] = {}
        self._plans: dict[PlanKey, ReadPlan] = {}

    def reset(
        self, snapshot: RegistrySnapshot, transformations: Mapping[str, Transformation]
    ) -> None:
        self.snapshot = snapshot
        self.transformations = transformations
        self._plans = {}

    def get(
        self,
        features: Sequence[str],
        service: str | None,
        full_names: bool,
        entity_names: Sequence[str],
        include_view_metadata: bool,
    ) -> ReadPlan:
        key: PlanKey = (
            tuple(features),
            service,
            full_names,
            tuple(entity_names),
            include_view_metadata,
        )
        plan = self._plans.get(key)
        if plan is None:
            if self.snapshot is None:
                raise ApiError(503, "registry_unavailable", [], "the registry is not loaded")
            plan = build_plan(
                self.snapshot,
                features,
                service,
                full_names,
                entity_names,
                include_view_metadata,
                self.transformations,
            )
            if len(self._plans) >= self.max_entries:
                self._plans.clear()
            self._plans[key] = plan
        return plan
