"""Feature definitions, the registry that stores them, and its refresh.

A feature repo imports its building blocks from here::

    from registry import Entity, FeatureView, Field, FileSource, Float32, Int64
"""

from registry.artifacts import artifacts
from registry.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
    on_demand_feature_view,
)
from registry.permissions import (
    ALL_ACTIONS,
    READ,
    WRITE,
    AllowAll,
    AuthzedAction,
    GroupBasedPolicy,
    Permission,
    RoleBasedPolicy,
)
from registry.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    Json,
    Map,
    String,
    UnixTimestamp,
    ValueType,
)

__all__ = [
    "ALL_ACTIONS",
    "READ",
    "WRITE",
    "AllowAll",
    "Array",
    "AuthzedAction",
    "Bool",
    "Bytes",
    "Entity",
    "FeatureService",
    "FeatureView",
    "Field",
    "FileSource",
    "Float32",
    "Float64",
    "GroupBasedPolicy",
    "Int32",
    "Int64",
    "Json",
    "Map",
    "OnDemandFeatureView",
    "Permission",
    "PushSource",
    "RequestSource",
    "RoleBasedPolicy",
    "String",
    "UnixTimestamp",
    "ValueType",
    "artifacts",
    "on_demand_feature_view",
]
