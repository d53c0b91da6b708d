"""Compile on-demand feature views and request sources into registry specs."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence

from registry.definitions import (
    FeatureView,
    FeatureViewProjection,
    OnDemandFeatureView,
    RequestSource,
)
from registry.model import (
    FeatureViewSpec,
    FieldSpec,
    OnDemandFeatureViewSpec,
    ProjectionSpec,
    RequestSourceSpec,
)
from registry.types import DType

Fail = Callable[[str], None]


def code_hash(odfv: OnDemandFeatureView) -> str:
    """A fingerprint of the transformation's source, to notice edits after apply."""
    try:
        source = inspect.getsource(odfv.udf)
    except (OSError, TypeError):
        source = getattr(odfv.udf, "__qualname__", repr(odfv.udf))
    return hashlib.sha256(source.encode()).hexdigest()


def _fields(schema: Sequence[object], fail: Fail, what: str) -> list[FieldSpec]:
    fields = []
    seen: set[str] = set()
    for field in schema:
        name = getattr(field, "name", None)
        dtype = getattr(field, "dtype", None)
        if not isinstance(name, str) or not isinstance(dtype, DType):
            fail(f"{what} must hold Field(name=..., dtype=<a type>) entries, not {field!r}")
            continue
        if name in seen:
            fail(f"{what}: field {name!r} is declared twice")
        seen.add(name)
        fields.append(FieldSpec(name, dtype.name, getattr(field, "description", "")))
    return fields


def compile_on_demand(
    odfv: OnDemandFeatureView, views: Mapping[str, FeatureViewSpec], fail: Fail
) -> OnDemandFeatureViewSpec | None:
    """Check an on-demand view against the compiled feature views; None on problems."""
    problems: list[str] = []

    def problem(text: str) -> None:
        problems.append(text)
        fail(text)

    if odfv.mode != "python":
        problem(f"mode {odfv.mode!r} is not supported; Ladle runs mode='python' transformations")
    if not callable(odfv.udf):
        problem("the transformation is not callable")
    outputs = _fields(odfv.schema, problem, "schema")
    if not outputs and odfv.schema == []:
        problem("declares no output features in its schema")

    sources: list[ProjectionSpec] = []
    ttls: list[float] = []
    requests: list[RequestSourceSpec] = []
    join_keys: list[FieldSpec] | None = None
    for source in odfv.sources:
        if isinstance(source, RequestSource):
            requests.append(
                RequestSourceSpec(
                    source.name, _fields(source.schema, problem, f"request source {source.name!r}")
                )
            )
            continue
        if isinstance(source, FeatureViewProjection) and isinstance(source.view, FeatureView):
            view_name, wanted = source.view.name, list(source.features)
        elif isinstance(source, FeatureView):
            view_name, wanted = source.name, None
        else:
            problem(f"sources must be feature views or request sources, not {source!r}")
            continue
        spec = views.get(view_name)
        if spec is None:
            problem(f"uses feature view {view_name!r}, which is not declared or has problems")
            continue
        names = [f.name for f in spec.features]
        for feature in wanted or []:
            if feature not in names:
                problem(f"feature view {view_name!r} has no feature {feature!r}")
        sources.append(ProjectionSpec(view_name, wanted or names))
        if spec.ttl_seconds:
            ttls.append(spec.ttl_seconds)
        if join_keys is None:
            join_keys = list(spec.join_keys)
        elif [k.name for k in join_keys] != [k.name for k in spec.join_keys]:
            join_keys = []  # sources with different keys: cannot be stored as one record
    if not sources and not requests:
        problem("has no sources")
    if odfv.write_to_online_store and not join_keys:
        problem("write_to_online_store needs feature view sources that share their entities")
    inputs = [name for p in sources for name in p.features] + [
        f.name for r in requests for f in r.schema
    ]
    for output in outputs:
        if output.name in inputs:
            problem(f"output {output.name!r} has the name of one of its inputs")
    if problems:
        return None
    module = getattr(odfv.udf, "__module__", "") or ""
    function = getattr(odfv.udf, "__qualname__", "") or ""
    return OnDemandFeatureViewSpec(
        name=odfv.name,
        sources=sources,
        request_sources=requests,
        features=outputs,
        module=module,
        function=function,
        code_hash=code_hash(odfv),
        join_keys=join_keys or [],
        singleton=odfv.singleton,
        write_to_online_store=odfv.write_to_online_store,
        # A stored value is as fresh as its stalest input may be.
        ttl_seconds=min(ttls, default=0.0),
        description=odfv.description,
        tags=odfv.tags,
    )
