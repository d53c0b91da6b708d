"""The objects a feature repo declares, with Feast's names and arguments.

These are plain Python objects meant to be written by hand. ``ladle apply`` compiles
them into the serializable specs of :mod:`registry.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from registry.types import DType, ValueType


class Entity:
    """Something features describe, identified by one join key (``driver_id``)."""

    def __init__(
        self,
        name: str,
        join_keys: Sequence[str] | None = None,
        value_type: ValueType | DType | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = name
        self.join_keys = list(join_keys) if join_keys else [name]
        self.value_type = value_type
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    @property
    def join_key(self) -> str:
        return self.join_keys[0]

    def __repr__(self) -> str:
        return f"Entity(name={self.name!r}, join_keys={self.join_keys!r})"


class Field:
    """A named, typed column of a feature view's schema."""

    def __init__(
        self,
        *,
        name: str,
        dtype: DType,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.description = description
        self.tags = dict(tags or {})

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype!r})"


class FileSource:
    """Offline data in Parquet or CSV files (a path or a glob pattern)."""

    def __init__(
        self,
        *,
        path: str,
        timestamp_field: str,
        created_timestamp_column: str = "",
        name: str = "",
        file_format: str | None = None,
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.path = path
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column
        self.name = name or path
        self.file_format = file_format
        self.field_mapping = dict(field_mapping or {})
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self) -> str:
        return f"FileSource(name={self.name!r}, path={self.path!r})"


class PushSource:
    """A source that streams push rows into; its batch source keeps them offline."""

    def __init__(
        self,
        *,
        name: str,
        batch_source: FileSource,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = name
        self.batch_source = batch_source
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self) -> str:
        return f"PushSource(name={self.name!r})"


class FeatureView:
    """A group of features of the same entities, read from one source."""

    def __init__(
        self,
        *,
        name: str,
        source: FileSource | PushSource,
        schema: Sequence[Field] | None = None,
        entities: Sequence[Entity] | None = None,
        ttl: timedelta | None = timedelta(0),
        online: bool = True,
        offline: bool = False,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = name
        self.source = source
        self.schema = list(schema or [])
        self.entities = list(entities or [])
        self.ttl = ttl
        self.online = online
        self.offline = offline
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __getitem__(self, features: Sequence[str]) -> FeatureViewProjection:
        """``view[["f1", "f2"]]`` selects some features, for use in a FeatureService."""
        if isinstance(features, str):
            features = [features]
        return FeatureViewProjection(self, list(features))

    def __repr__(self) -> str:
        return f"FeatureView(name={self.name!r})"


class FeatureViewProjection:
    """Some of a feature view's features, in the order given."""

    def __init__(self, view: FeatureView | OnDemandFeatureView, features: list[str]) -> None:
        self.view = view
        self.features = features

    def __repr__(self) -> str:
        return f"{self.view.name}[{self.features!r}]"


class FeatureService:
    """A named, ordered set of features that a model reads together.

    With ``precompute_online=True`` Ladle also keeps one vector per entity holding every
    feature of the service, so a read of the service decodes one record per entity.
    """

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[FeatureView | OnDemandFeatureView | FeatureViewProjection],
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
        precompute_online: bool = False,
    ) -> None:
        self.name = name
        self.features = list(features)
        self.precompute_online = precompute_online
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self) -> str:
        return f"FeatureService(name={self.name!r})"


class RequestSource:
    """Values a request brings along with its entity keys, for on-demand views."""

    def __init__(
        self,
        *,
        name: str,
        schema: Sequence[Field],
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = name
        self.schema = list(schema)
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self) -> str:
        return f"RequestSource(name={self.name!r})"


Transformation = Callable[[dict[str, Any]], dict[str, Any]]


class OnDemandFeatureView:
    """Features computed at request time from stored features and request data.

    The function takes a dict of input columns (name -> list of values, one per row), or
    with ``singleton=True`` one row (name -> value), and returns the output features in
    the same form. Inputs are named by feature (and ``view__feature``) and request field.
    """

    def __init__(
        self,
        *,
        name: str,
        sources: Sequence[FeatureView | FeatureViewProjection | RequestSource],
        schema: Sequence[Field],
        udf: Transformation,
        mode: str = "python",
        singleton: bool = False,
        write_to_online_store: bool = False,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = name
        self.sources = list(sources)
        self.schema = list(schema)
        self.udf = udf
        self.mode = mode
        self.singleton = singleton
        self.write_to_online_store = write_to_online_store
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __getitem__(self, features: Sequence[str]) -> FeatureViewProjection:
        if isinstance(features, str):
            features = [features]
        return FeatureViewProjection(self, list(features))

    def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self.udf(inputs)

    def __repr__(self) -> str:
        return f"OnDemandFeatureView(name={self.name!r})"


def on_demand_feature_view(
    *,
    sources: Sequence[FeatureView | FeatureViewProjection | RequestSource],
    schema: Sequence[Field],
    name: str | None = None,
    mode: str = "python",
    singleton: bool = False,
    write_to_online_store: bool = False,
    description: str = "",
    tags: dict[str, str] | None = None,
    owner: str = "",
    entities: Sequence[Entity] | None = None,
) -> Callable[[Transformation], OnDemandFeatureView]:
    """Decorate a transformation to declare an on-demand feature view (Feast's API).

    ``entities`` is accepted for Feast compatibility; the keys come from the sources.
    """

    def wrap(udf: Transformation) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=name or udf.__name__,
            sources=sources,
            schema=schema,
            udf=udf,
            mode=mode,
            singleton=singleton,
            write_to_online_store=write_to_online_store,
            description=description or (udf.__doc__ or "").strip(),
            tags=tags,
            owner=owner,
        )

    return wrap


Definition = (
    Entity
    | FileSource
    | PushSource
    | FeatureView
    | FeatureService
    | RequestSource
    | OnDemandFeatureView
)
