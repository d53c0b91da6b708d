"""Resolve a request's feature selection into a read plan, once per registry version.

A plan holds everything about a request that does not depend on its entity values: the
output columns and their names, which views to read under which entity keys, the key
encoders, the TTLs and the value converters. Plans are cached by request shape, so the
hot path does no name lookups at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.entities import Coercer, coercer
from app.errors import ApiError
from app.schemas import FeatureViewMetadata, ResponseMetadata
from registry.model import FeatureViewSpec, RegistrySnapshot
from stores.codec import OutputConverter, output_converter
from stores.keys import KeyEncoder, make_key_encoder


@dataclass(frozen=True, slots=True)
class FeatureSlot:
    """One output column fed by a stored feature."""

    feature: str
    column: int
    convert: OutputConverter | None


@dataclass(frozen=True, slots=True)
class ViewRead:
    view: str
    ttl_us: int
    slots: tuple[FeatureSlot, ...]


@dataclass(frozen=True, slots=True)
class KeyGroup:
    """Views that share join keys, and so share one stored record per entity."""

    key_columns: tuple[int, ...]  # positions in ReadPlan.entity_names
    encode: KeyEncoder
    views: tuple[ViewRead, ...]
    view_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    entity_names: tuple[str, ...]
    coercers: tuple[Coercer, ...]
    groups: tuple[KeyGroup, ...]
    column_count: int
    metadata: ResponseMetadata


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


def _selection(
    snapshot: RegistrySnapshot, features: Sequence[str], service: str | None
) -> list[tuple[FeatureViewSpec, str, list[str | int]]]:
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
        return [
            (snapshot.feature_views[p.view], f, loc) for p in spec.projections for f in p.features
        ]
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
        view = snapshot.feature_views.get(view_name)
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
) -> ReadPlan:
    selection = _selection(snapshot, features, service)
    key_types: dict[str, str] = {}
    for view, _, _ in selection:
        for key in view.join_keys:
            key_types.setdefault(key.name, key.dtype)
    for name in entity_names:
        if name not in key_types:
            expected = ", ".join(sorted(key_types)) or "none"
            raise ApiError(
                422,
                "unknown_join_key",
                ["body", "entities", name],
                f"{name!r} is not a join key of the requested features (expected: {expected})",
            )
    for view, _, _ in selection:
        for key in view.join_keys:
            if key.name not in entity_names:
                raise ApiError(
                    422,
                    "missing_join_key",
                    ["body", "entities"],
                    f"feature view {view.name!r} needs join key {key.name!r}",
                )

    names = list(entity_names)
    owners: dict[str, str] = {}
    per_view: dict[str, list[FeatureSlot]] = {}
    views: dict[str, FeatureViewSpec] = {}
    for view, feature, loc in selection:
        name = f"{view.name}__{feature}" if full_names else feature
        if name in owners or name in entity_names:
            raise ApiError(
                422,
                "name_collision",
                loc,
                f"two requested columns are both named {name!r}; "
                "set full_feature_names to true to tell them apart",
            )
        owners[name] = view.name
        field = view.feature(feature)
        assert field is not None
        per_view.setdefault(view.name, []).append(
            FeatureSlot(feature, len(names), output_converter(field.dtype))
        )
        views[view.name] = view
        names.append(name)

    position = {name: i for i, name in enumerate(entity_names)}
    grouped: dict[tuple[str, ...], list[ViewRead]] = {}
    for view_name, slots in per_view.items():
        view = views[view_name]
        keys = tuple(k.name for k in view.join_keys)
        ttl_us = int(view.ttl_seconds * 1_000_000)
        grouped.setdefault(keys, []).append(ViewRead(view_name, ttl_us, tuple(slots)))
    groups = []
    for keys, reads in grouped.items():
        encoder = make_key_encoder(snapshot.project, [(k, key_types[k]) for k in keys])
        groups.append(
            KeyGroup(
                tuple(position[k] for k in keys),
                encoder,
                tuple(reads),
                tuple(r.view for r in reads),
            )
        )

    metadata = ResponseMetadata(feature_names=names)
    if include_view_metadata:
        metadata.feature_view_metadata = [FeatureViewMetadata(v) for v in views]
    return ReadPlan(
        entity_names=tuple(entity_names),
        coercers=tuple(coercer(key_types[n]) for n in entity_names),
        groups=tuple(groups),
        column_count=len(names),
        metadata=metadata,
    )


class PlanCache:
    """Plans by request shape for the current registry version; bounded in size."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.snapshot: RegistrySnapshot | None = None
        self._plans: dict[PlanKey, ReadPlan] = {}

    def reset(self, snapshot: RegistrySnapshot) -> None:
        self.snapshot = snapshot
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
                self.snapshot, features, service, full_names, entity_names, include_view_metadata
            )
            if len(self._plans) >= self.max_entries:
                self._plans.clear()
            self._plans[key] = plan
        return plan
