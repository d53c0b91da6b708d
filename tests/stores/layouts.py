"""Small registry snapshots with a precomputed service, for the vector tests."""

from __future__ import annotations

from registry.model import (
    FeatureServiceSpec,
    FeatureViewSpec,
    FieldSpec,
    FileSourceSpec,
    ProjectionSpec,
    RegistrySnapshot,
)
from stores.precompute import VectorLayout, vector_layout

SOURCE = FileSourceSpec(name="s", path="s.parquet", timestamp_field="ts")
KEY = [FieldSpec("driver_id", "Int64")]


def view(name: str, *features: tuple[str, str], ttl: float = 0.0) -> FeatureViewSpec:
    return FeatureViewSpec(
        name=name,
        entities=["driver"],
        join_keys=KEY,
        features=[FieldSpec(n, t) for n, t in features],
        source=SOURCE,
        ttl_seconds=ttl,
    )


def snapshot(
    *views: FeatureViewSpec, projections: list[ProjectionSpec], name: str = "svc"
) -> RegistrySnapshot:
    service = FeatureServiceSpec(name, projections, precompute_online=True)
    return RegistrySnapshot(
        project="p",
        version=1,
        updated_at="",
        feature_views={v.name: v for v in views},
        feature_services={name: service},
    )


A = view("a", ("x", "Float32"), ("y", "Int64"), ttl=60)
B = view("b", ("z", "String"), ("when", "UnixTimestamp"), ("scores", "Array(Float64)"))
BOTH = [ProjectionSpec("a", ["y", "x"]), ProjectionSpec("b", ["z", "when", "scores"])]


def layout_of(
    *views: FeatureViewSpec, projections: list[ProjectionSpec] = BOTH, name: str = "svc"
) -> VectorLayout:
    snap = snapshot(*views, projections=projections, name=name)
    return vector_layout(snap, snap.feature_services[name])
