"""Turn a repo's declared objects into registry specs, checking that they fit together.

Every problem is collected and reported at once, each naming the object (and its file).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from registry.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    FileSource,
    OnDemandFeatureView,
    PushSource,
)
from registry.model import (
    EntitySpec,
    FeatureServiceSpec,
    FeatureViewSpec,
    FieldSpec,
    FileSourceSpec,
    OnDemandFeatureViewSpec,
    ProjectionSpec,
    PushSourceSpec,
    SourceSpec,
)
from registry.on_demand import compile_on_demand
from registry.permissions import Permission, PermissionSpec, compile_permission
from registry.repo import RepoError, RepoObject
from registry.types import KEY_TYPES, DType, ValueType

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*")
#: Reads a source's column types (name -> DuckDB type); raises on unreadable data.
SchemaReader = Callable[[FileSourceSpec], dict[str, str]]


class CompiledRepo:
    def __init__(self) -> None:
        self.entities: dict[str, EntitySpec] = {}
        self.feature_views: dict[str, FeatureViewSpec] = {}
        self.feature_services: dict[str, FeatureServiceSpec] = {}
        self.on_demand_feature_views: dict[str, OnDemandFeatureViewSpec] = {}
        self.permissions: dict[str, PermissionSpec] = {}


def duckdb_type_fits(dtype: str, column: str) -> bool:
    """Whether a source column of DuckDB type ``column`` can feed a feature of ``dtype``."""
    column = column.upper()
    ints = (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "HUGEINT",
    )
    floats = ("FLOAT", "DOUBLE", "REAL", *ints)
    if column.startswith("DECIMAL"):
        return dtype in ("Float32", "Float64")
    if dtype.startswith("Array("):
        element = dtype[len("Array(") : -1]
        if column.endswith("[]"):
            return duckdb_type_fits(element, column[:-2])
        return False
    table: dict[str, Callable[[str], bool]] = {
        "Int32": lambda c: c in ints,
        "Int64": lambda c: c in ints,
        "Float32": lambda c: c in floats,
        "Float64": lambda c: c in floats,
        "String": lambda c: c in ("VARCHAR", "UUID"),
        "Json": lambda c: c in ("VARCHAR", "JSON") or c.startswith(("STRUCT", "MAP")),
        "Bytes": lambda c: c == "BLOB",
        "Bool": lambda c: c == "BOOLEAN",
        "UnixTimestamp": lambda c: c.startswith(("TIMESTAMP", "DATE")) or c in ints,
        "Map": lambda c: c.startswith(("STRUCT", "MAP")),
    }
    return table[dtype](column)


def _duckdb_to_dtype(column: str) -> str | None:
    for candidate in ("Int64", "Int32", "String", "Bytes"):
        if duckdb_type_fits(candidate, column):
            return candidate
    return None


class _Compiler:
    def __init__(self, objects: Sequence[tuple[RepoObject, str]], read_schema: SchemaReader):
        self.objects = objects
        self.read_schema = read_schema
        self.errors: list[str] = []
        self.origin = {id(obj): origin for obj, origin in objects}
        self._schemas: dict[str, dict[str, str] | None] = {}

    def where(self, obj: object, kind: str, name: str) -> str:
        origin = self.origin.get(id(obj))
        return f"{kind} {name!r}" + (f" ({origin})" if origin else "")

    def fail(self, obj: object, kind: str, name: str, problem: str) -> None:
        self.errors.append(f"{self.where(obj, kind, name)}: {problem}")

    def failer(self, odfv: OnDemandFeatureView, name: str) -> Callable[[str], None]:
        def fail(problem: str) -> None:
            self.fail(odfv, "on-demand feature view", name, problem)

        return fail

    def failer_for(self, obj: object, kind: str, name: str) -> Callable[[str], None]:
        def fail(problem: str) -> None:
            self.fail(obj, kind, name, problem)

        return fail

    def unique(self, kind: str, items: list[RepoObject]) -> dict[str, RepoObject]:
        by_name: dict[str, RepoObject] = {}
        for item in items:
            name = getattr(item, "name", "")
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.fail(
                    item,
                    kind,
                    str(name),
                    "name must start with a letter or '_' and "
                    "hold only letters, digits, '_', '-' and '.'",
                )
                continue
            if name in by_name:
                first = self.where(by_name[name], kind, name)
                self.fail(item, kind, name, f"duplicate name; already declared as {first}")
                continue
            by_name[name] = item
        return by_name

    def source_spec(self, source: object, owner: FeatureView) -> SourceSpec | None:
        if isinstance(source, PushSource):
            batch = self.file_spec(source.batch_source, owner)
            return PushSourceSpec(name=source.name, batch_source=batch) if batch else None
        if isinstance(source, FileSource):
            return self.file_spec(source, owner)
        self.fail(
            owner,
            "feature view",
            owner.name,
            f"source must be a FileSource or PushSource, not {type(source).__name__}",
        )
        return None

    def file_spec(self, source: object, owner: FeatureView) -> FileSourceSpec | None:
        if not isinstance(source, FileSource):
            self.fail(
                owner,
                "feature view",
                owner.name,
                "a PushSource's batch_source must be a FileSource",
            )
            return None
        # Without an explicit format, a ".csv" path is CSV; anything else is Parquet.
        inferred = "csv" if source.path.lower().endswith(".csv") else "parquet"
        return FileSourceSpec(
            name=source.name,
            path=source.path,
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
            file_format=(source.file_format or "").lower() or inferred,
            field_mapping=source.field_mapping,
        )

    def columns(self, source: FileSourceSpec, owner: FeatureView) -> dict[str, str] | None:
        if source.path not in self._schemas:
            try:
                described = self.read_schema(source)
            except Exception as exc:
                # DuckDB appends the failing query and a caret line: keep the first line.
                detail = next((line for line in str(exc).splitlines() if line.strip()), "")
                self.fail(owner, "feature view", owner.name, detail or type(exc).__name__)
                described = None
            self._schemas[source.path] = described
        columns = self._schemas[source.path]
        if columns is None:
            return None
        mapped = dict(columns)
        for original, target in source.field_mapping.items():
            if original in mapped:
                mapped[target] = mapped.pop(original)
        return mapped

    def entity_spec(self, entity: Entity) -> EntitySpec | None:
        if len(entity.join_keys) != 1:
            self.fail(entity, "entity", entity.name, "exactly one join key is supported")
            return None
        value_type = entity.value_type
        dtype = ""
        if isinstance(value_type, ValueType) and value_type is not ValueType.UNKNOWN:
            dtype = value_type.value
        elif isinstance(value_type, DType):
            dtype = value_type.name
        elif value_type not in (None, ValueType.UNKNOWN):
            self.fail(entity, "entity", entity.name, f"value_type {value_type!r} is not a type")
            return None
        if dtype and dtype not in KEY_TYPES:
            self.fail(
                entity,
                "entity",
                entity.name,
                f"value_type {dtype} cannot be a join key (use one of {sorted(KEY_TYPES)})",
            )
            return None
        return EntitySpec(
            name=entity.name,
            join_key=entity.join_key,
            dtype=dtype,
            description=entity.description,
            tags=entity.tags,
        )

    def view_spec(
        self, view: FeatureView, entities: dict[str, EntitySpec]
    ) -> FeatureViewSpec | None:
        errors_before = len(self.errors)

        def fail(problem: str) -> None:
            self.fail(view, "feature view", view.name, problem)

        entity_names: list[str] = []
        for ref in view.entities:
            name = ref if isinstance(ref, str) else getattr(ref, "name", None)
            if not isinstance(ref, str | Entity) or name not in entities:
                fail(f"uses entity {name!r}, which the repo does not declare")
            else:
                entity_names.append(name)
        if view.ttl is not None and not isinstance(view.ttl, timedelta):
            fail("ttl must be a datetime.timedelta")
        elif view.ttl is not None and view.ttl < timedelta(0):
            fail("ttl must not be negative")
        source = self.source_spec(view.source, view)
        join_key_names = {entities[e].join_key for e in entity_names}
        declared: dict[str, str] = {}
        features: list[FieldSpec] = []
        for field in view.schema:
            if not hasattr(field, "dtype") or not isinstance(field.dtype, DType):
                fail(
                    f"field {getattr(field, 'name', field)!r}: dtype must be a type such as "
                    "Int64 or Array(Float32)"
                )
                continue
            if ":" in field.name or "@" in field.name:
                fail(f"field {field.name!r}: names may not contain ':' or '@'")
            if field.name in declared:
                fail(f"field {field.name!r} is declared twice")
            declared[field.name] = field.dtype.name
            if field.name not in join_key_names:
                features.append(FieldSpec(field.name, field.dtype.name, field.description))
        if not features:
            fail("declares no features in its schema")
        if source is None or len(self.errors) > errors_before:
            return None
        batch = source.batch_source if isinstance(source, PushSourceSpec) else source
        columns = self.columns(batch, view)
        join_keys: list[FieldSpec] = []
        for name in entity_names:
            spec = entities[name]
            dtype = declared.get(spec.join_key) or spec.dtype
            if columns is not None and spec.join_key not in columns:
                fail(f"join key {spec.join_key!r} is missing from source {batch.name!r}")
            elif not dtype and columns is not None:
                dtype = _duckdb_to_dtype(columns[spec.join_key]) or ""
            elif dtype in KEY_TYPES and columns is not None:
                key_column = columns[spec.join_key]
                if not duckdb_type_fits(dtype, key_column):
                    fail(
                        f"join key {spec.join_key!r} is {dtype} but source {batch.name!r} "
                        f"holds {key_column}"
                    )
            if spec.dtype and declared.get(spec.join_key, spec.dtype) != spec.dtype:
                fail(
                    f"field {spec.join_key!r} is {declared[spec.join_key]} but entity "
                    f"{name!r} is {spec.dtype}"
                )
            if dtype not in KEY_TYPES:
                fail(
                    f"join key {spec.join_key!r} needs a type of {sorted(KEY_TYPES)}; "
                    f"give the entity a value_type or add the field to the schema"
                )
            join_keys.append(FieldSpec(spec.join_key, dtype))
        if columns is not None:
            for needed in (batch.timestamp_field, batch.created_timestamp_column):
                if needed and needed not in columns:
                    fail(f"column {needed!r} is missing from source {batch.name!r}")
            for feature in features:
                column = columns.get(feature.name)
                if column is None:
                    fail(f"feature {feature.name!r} is missing from source {batch.name!r}")
                elif not duckdb_type_fits(feature.dtype, column):
                    fail(
                        f"feature {feature.name!r} is {feature.dtype} but source "
                        f"{batch.name!r} holds {column}"
                    )
        if len(self.errors) > errors_before:
            return None
        ttl = view.ttl.total_seconds() if view.ttl else 0.0
        return FeatureViewSpec(
            name=view.name,
            entities=entity_names,
            join_keys=join_keys,
            features=features,
            source=source,
            ttl_seconds=ttl,
            online=view.online,
            description=view.description,
            tags=view.tags,
        )

    def service_spec(
        self,
        service: FeatureService,
        views: Mapping[str, FeatureViewSpec | OnDemandFeatureViewSpec],
        declared: set[str],
    ) -> FeatureServiceSpec | None:
        errors_before = len(self.errors)
        projections: list[ProjectionSpec] = []
        broken_view = False
        for item in service.features:
            if isinstance(item, FeatureViewProjection):
                view_obj, wanted = item.view, item.features
            elif isinstance(item, FeatureView | OnDemandFeatureView):
                view_obj, wanted = item, None
            else:
                self.fail(
                    service,
                    "feature service",
                    service.name,
                    f"features must hold feature views, not {type(item).__name__}",
                )
                continue
            spec = views.get(view_obj.name)
            if spec is None:
                if view_obj.name not in declared:
                    self.fail(
                        service,
                        "feature service",
                        service.name,
                        f"uses feature view {view_obj.name!r}, which the repo does not declare",
                    )
                broken_view = True  # a declared view with problems has been reported
                continue
            if not spec.online:
                self.fail(
                    service,
                    "feature service",
                    service.name,
                    f"feature view {spec.name!r} is not served online (online=False)",
                )
            names = [f.name for f in spec.features]
            if wanted and len(set(wanted)) != len(wanted):
                self.fail(
                    service,
                    "feature service",
                    service.name,
                    f"lists a feature of {spec.name!r} twice",
                )
            for feature in wanted or []:
                if feature not in names:
                    self.fail(
                        service,
                        "feature service",
                        service.name,
                        f"feature view {spec.name!r} has no feature {feature!r}",
                    )
            projections.append(ProjectionSpec(view=spec.name, features=list(wanted or names)))
        if not projections and not broken_view and len(self.errors) == errors_before:
            self.fail(service, "feature service", service.name, "holds no features")
        precompute = service.precompute_online
        if not isinstance(precompute, bool):
            self.fail(service, "feature service", service.name, "precompute_online must be a bool")
        elif precompute and len(self.errors) == errors_before:
            self.check_precompute(service, projections, views)
        if len(self.errors) > errors_before:
            return None
        return FeatureServiceSpec(
            name=service.name,
            projections=projections,
            description=service.description,
            tags=service.tags,
            precompute_online=precompute is True,
        )

    def check_precompute(
        self,
        service: FeatureService,
        projections: list[ProjectionSpec],
        views: Mapping[str, FeatureViewSpec | OnDemandFeatureViewSpec],
    ) -> None:
        """A precomputed vector is one record under one entity key, built from stored
        records: every view must be stored and keyed by the same join keys."""

        def fail(problem: str) -> None:
            self.fail(service, "feature service", service.name, f"precompute_online: {problem}")

        keys: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()
        for projection in projections:
            spec = views[projection.view]
            if isinstance(spec, OnDemandFeatureViewSpec) and not spec.write_to_online_store:
                fail(
                    f"on-demand feature view {spec.name!r} is computed at request time, so it "
                    "cannot be precomputed; give it write_to_online_store=True or read it "
                    "in a separate request"
                )
                continue
            join_keys = sorted(f"{k.name} ({k.dtype})" for k in spec.join_keys)
            keys.setdefault(", ".join(join_keys) or "no join keys", []).append(spec.name)
            for feature in projection.features:
                if (spec.name, feature) in seen:
                    fail(f"lists feature {spec.name}:{feature} twice")
                seen.add((spec.name, feature))
        if len(keys) > 1:
            described = "; ".join(
                f"{', '.join(dict.fromkeys(names))} keyed by {key}" for key, names in keys.items()
            )
            fail(f"every view must have the same join keys, but: {described}")

    def run(self) -> CompiledRepo:
        def of(kind: type) -> list[RepoObject]:
            return [obj for obj, _ in self.objects if isinstance(obj, kind)]

        compiled = CompiledRepo()
        for name, entity in self.unique("entity", of(Entity)).items():
            assert isinstance(entity, Entity)
            spec = self.entity_spec(entity)
            if spec:
                compiled.entities[name] = spec
        # Views and on-demand views share one namespace: both are named in "view:feature".
        declared_views = self.unique("feature view", of(FeatureView) + of(OnDemandFeatureView))
        for name, view in declared_views.items():
            if isinstance(view, FeatureView):
                view_spec = self.view_spec(view, compiled.entities)
                if view_spec:
                    compiled.feature_views[name] = view_spec
        for name, odfv in declared_views.items():
            if isinstance(odfv, OnDemandFeatureView):
                odfv_spec = compile_on_demand(odfv, compiled.feature_views, self.failer(odfv, name))
                if odfv_spec:
                    compiled.on_demand_feature_views[name] = odfv_spec
        readable: dict[str, FeatureViewSpec | OnDemandFeatureViewSpec] = {
            **compiled.feature_views,
            **compiled.on_demand_feature_views,
        }
        for name, service in self.unique("feature service", of(FeatureService)).items():
            assert isinstance(service, FeatureService)
            service_spec = self.service_spec(service, readable, set(declared_views))
            if service_spec:
                compiled.feature_services[name] = service_spec
        for name, permission in self.unique("permission", of(Permission)).items():
            assert isinstance(permission, Permission)
            fail = self.failer_for(permission, "permission", name)
            permission_spec = compile_permission(permission, fail)
            if permission_spec:
                compiled.permissions[name] = permission_spec
        if self.errors:
            raise RepoError("the feature repo has problems:\n  - " + "\n  - ".join(self.errors))
        return compiled


def compile_repo(
    objects: Sequence[tuple[RepoObject, str]], read_schema: SchemaReader
) -> CompiledRepo:
    """Raise :class:`RepoError` listing every problem, or return the specs."""
    return _Compiler(objects, read_schema).run()
