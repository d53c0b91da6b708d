"""The registry's stored form: msgspec structs that ``ladle apply`` writes and servers read.

A snapshot is self-contained: every view carries its join keys and their types, so the
serving path never has to chase references between objects.
"""

from __future__ import annotations

import msgspec

from registry.permissions import PermissionSpec


class FieldSpec(msgspec.Struct, frozen=True):
    name: str
    dtype: str
    description: str = ""


class EntitySpec(msgspec.Struct, frozen=True):
    name: str
    join_key: str
    dtype: str
    description: str = ""
    tags: dict[str, str] = {}


class FileSourceSpec(msgspec.Struct, frozen=True, tag="file"):
    name: str
    path: str
    timestamp_field: str
    created_timestamp_column: str = ""
    file_format: str = "parquet"
    field_mapping: dict[str, str] = {}


class PushSourceSpec(msgspec.Struct, frozen=True, tag="push"):
    name: str
    batch_source: FileSourceSpec


SourceSpec = FileSourceSpec | PushSourceSpec


class FeatureViewSpec(msgspec.Struct, frozen=True):
    name: str
    entities: list[str]
    #: One entry per entity, in declaration order: the join key and its type.
    join_keys: list[FieldSpec]
    features: list[FieldSpec]
    source: SourceSpec
    #: Seconds a value stays fresh; 0 means it never expires.
    ttl_seconds: float = 0.0
    online: bool = True
    description: str = ""
    tags: dict[str, str] = {}

    def feature(self, name: str) -> FieldSpec | None:
        for field in self.features:
            if field.name == name:
                return field
        return None


class ProjectionSpec(msgspec.Struct, frozen=True):
    view: str
    features: list[str]


class RequestSourceSpec(msgspec.Struct, frozen=True):
    name: str
    schema: list[FieldSpec]


class OnDemandFeatureViewSpec(msgspec.Struct, frozen=True):
    """A transformation's inputs, outputs, and where servers find its code.

    Servers import the function from the repo (``module``, ``function``) and refuse it if
    its source no longer hashes to ``code_hash``, i.e. it changed since ``ladle apply``.
    """

    name: str
    #: Feature view inputs, with the features the transformation gets from each.
    sources: list[ProjectionSpec]
    request_sources: list[RequestSourceSpec]
    features: list[FieldSpec]
    module: str
    function: str
    code_hash: str
    #: The entity keys shared by the source views (needed to store computed values).
    join_keys: list[FieldSpec] = []
    singleton: bool = False
    write_to_online_store: bool = False
    description: str = ""
    tags: dict[str, str] = {}
    ttl_seconds: float = 0.0
    online: bool = True

    def feature(self, name: str) -> FieldSpec | None:
        for field in self.features:
            if field.name == name:
                return field
        return None

    @property
    def request_fields(self) -> list[FieldSpec]:
        return [field for source in self.request_sources for field in source.schema]


class FeatureServiceSpec(msgspec.Struct, frozen=True):
    name: str
    projections: list[ProjectionSpec]
    description: str = ""
    tags: dict[str, str] = {}
    #: Keep one precomputed vector per entity (see stores.precompute).
    precompute_online: bool = False


class MaterializationSpec(msgspec.Struct, frozen=True):
    """The last window materialized for a view, in UTC microseconds."""

    start_us: int
    end_us: int


class RegistrySnapshot(msgspec.Struct, frozen=True):
    project: str
    #: Bumped by every write; servers rebuild their plans when it changes.
    version: int
    updated_at: str
    entities: dict[str, EntitySpec] = {}
    feature_views: dict[str, FeatureViewSpec] = {}
    feature_services: dict[str, FeatureServiceSpec] = {}
    on_demand_feature_views: dict[str, OnDemandFeatureViewSpec] = {}
    materializations: dict[str, MaterializationSpec] = {}
    #: Who may do what to which resource; checked only when auth is on.
    permissions: dict[str, PermissionSpec] = {}
    #: Feature service -> fingerprint (hex) of the layout ``ladle precompute`` last built
    #: its vectors with. A service is served from its vectors only while this matches.
    precomputed: dict[str, str] = {}


snapshot_encoder = msgspec.json.Encoder()
snapshot_decoder = msgspec.json.Decoder(RegistrySnapshot)
