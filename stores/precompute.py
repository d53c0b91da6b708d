"""Layouts of precomputed feature vectors, and the runs that records contribute to them.

A layout is what a feature service's vectors look like: which view feeds each run of the
output, the features of each run in output order and their JSON converters. It is built
from the registry once per registry version. Its fingerprint hashes everything the bytes
depend on, so a vector written for another definition of the service is told apart (see
:mod:`stores.vectors` for the byte format).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from registry.model import (
    FeatureServiceSpec,
    FeatureViewSpec,
    OnDemandFeatureViewSpec,
    RegistrySnapshot,
)
from stores import codec, timestamps, vectors
from stores.base import VectorPart, VectorTarget

_encoder = msgspec.msgpack.Encoder()
#: Encodes values exactly as the response encoder (app.schemas) would.
_json = msgspec.json.Encoder()
_NULL = b"null"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive output columns fed by one view."""

    view: str
    features: tuple[str, ...]
    converters: tuple[codec.OutputConverter | None, ...]
    ttl_us: int


@dataclass(frozen=True, slots=True)
class VectorLayout:
    service: str
    field: str
    fingerprint: str  # hex, as recorded in the registry
    tag: bytes
    runs: tuple[Run, ...]
    views: tuple[str, ...]  # distinct, in output order
    views_csv: str
    join_keys: tuple[tuple[str, str], ...]  # (name, dtype), as the first view declares them
    elements: int  # run headers and values: the length of the vector's array
    empty: bytes  # the vector of an entity without records


Stored = FeatureViewSpec | OnDemandFeatureViewSpec


def _stored(snapshot: RegistrySnapshot, name: str) -> Stored:
    spec = snapshot.feature_views.get(name) or snapshot.on_demand_feature_views.get(name)
    assert spec is not None, f"{name} is checked by ladle apply"
    return spec


def vector_layout(snapshot: RegistrySnapshot, service: FeatureServiceSpec) -> VectorLayout:
    runs: list[tuple[Stored, list[str]]] = []
    for projection in service.projections:
        spec = _stored(snapshot, projection.view)
        if runs and runs[-1][0].name == spec.name:
            runs[-1][1].extend(projection.features)
        else:
            runs.append((spec, list(projection.features)))
    first = runs[0][0]
    join_keys = tuple((k.name, k.dtype) for k in first.join_keys)
    described = {
        "format": vectors.VERSION[0],
        "keys": sorted(join_keys),
        "runs": [[spec.name, [[f, _dtype(spec, f)] for f in features]] for spec, features in runs],
    }
    digest = hashlib.sha256(msgspec.json.encode(described)).digest()[: vectors.FINGERPRINT_BYTES]
    views = tuple(dict.fromkeys(spec.name for spec, _ in runs))
    tag = vectors.tag_for(digest)
    elements = len(runs) + sum(len(features) for _, features in runs)
    nothing = [vectors.NIL] * len(runs) + [vectors.NIL * len(features) for _, features in runs]
    return VectorLayout(
        service=service.name,
        field=vectors.field_for(service.name),
        fingerprint=digest.hex(),
        tag=tag,
        runs=tuple(
            Run(
                spec.name,
                tuple(features),
                tuple(codec.output_converter(_dtype(spec, f)) for f in features),
                int(spec.ttl_seconds * 1_000_000),
            )
            for spec, features in runs
        ),
        views=views,
        views_csv=",".join(views),
        join_keys=join_keys,
        elements=elements,
        empty=vectors.build(tag, elements, nothing),
    )


def _dtype(spec: Stored, feature: str) -> str:
    field = spec.feature(feature)
    assert field is not None, f"{spec.name}:{feature} is checked by ladle apply"
    return field.dtype


def vector_layouts(snapshot: RegistrySnapshot) -> dict[str, VectorLayout]:
    """The layout of every service with precompute_online, by service name."""
    return {
        name: vector_layout(snapshot, spec)
        for name, spec in snapshot.feature_services.items()
        if spec.precompute_online
    }


def encode_run(
    run: Run, event_ts_us: int, ts_text: str, values: Mapping[str, Any]
) -> tuple[bytes, bytes]:
    """One view's part of a vector: its header, and its values in output order, each
    already encoded as the JSON the response shows (so a read only joins bytes)."""
    fragments = []
    codes = []
    for name, convert in zip(run.features, run.converters, strict=True):
        value = values.get(name, _MISSING)
        if value is _MISSING:
            fragments.append(_NULL)
            codes.append("F")
        elif value is None:
            fragments.append(_NULL)
            codes.append("N")
        else:
            fragments.append(_json.encode(convert(value) if convert is not None else value))
            codes.append("P")
    statuses = "".join(codes) if "N" in codes or "F" in codes else None
    header = _encoder.encode((event_ts_us, _json.encode(ts_text), statuses))
    # The values go into the vector's one array: strip this array's own header.
    encoded = _encoder.encode(fragments)
    return header, encoded[len(vectors.array_header(len(fragments))) :]


class ViewVectors:
    """What a record of one view contributes to the vectors of the services holding it."""

    def __init__(self, layouts: Sequence[VectorLayout], view: str) -> None:
        self._targets = [
            (
                VectorTarget(
                    layout.field, layout.tag, len(layout.runs), layout.views_csv, layout.empty
                ),
                [(i, run) for i, run in enumerate(layout.runs) if run.view == view],
            )
            for layout in layouts
            if view in layout.views
        ]
        #: Rows written together often share an event time: format it once.
        self._last_ts: tuple[int, str] = (0, timestamps.format_us(0))

    def __bool__(self) -> bool:
        return bool(self._targets)

    def parts(self, event_ts_us: int, values: Mapping[str, Any]) -> tuple[VectorPart, ...]:
        if not self._targets:
            return ()
        last = self._last_ts
        if last[0] == event_ts_us:
            ts_text = last[1]
        else:
            ts_text = timestamps.format_us(event_ts_us)
            self._last_ts = (event_ts_us, ts_text)
        return tuple(
            VectorPart(
                target,
                tuple((i, *encode_run(run, event_ts_us, ts_text, values)) for i, run in runs),
            )
            for target, runs in self._targets
        )


def build_vector(layout: VectorLayout, records: Mapping[str, codec.Record]) -> bytes:
    """A whole vector from the records of its views (by view name; absent = no record)."""
    headers, values = [], []
    for run in layout.runs:
        record = records.get(run.view)
        if record is None:
            headers.append(vectors.NIL)
            values.append(vectors.NIL * len(run.features))
        else:
            event_ts, stored = record
            header, encoded = encode_run(run, event_ts, timestamps.format_us(event_ts), stored)
            headers.append(header)
            values.append(encoded)
    return vectors.build(layout.tag, layout.elements, headers + values)
