"""The precomputed vector format and layouts, without a store."""

from __future__ import annotations

import math

import msgspec

from registry.model import FieldSpec, ProjectionSpec
from stores import vectors
from stores.precompute import build_vector, encode_run
from tests.stores.layouts import BOTH, A, B, layout_of, view


def test_layout_runs_follow_the_service_order() -> None:
    layout = layout_of(A, B)
    assert [(r.view, r.features, r.ttl_us) for r in layout.runs] == [
        ("a", ("y", "x"), 60_000_000),
        ("b", ("z", "when", "scores"), 0),
    ]
    assert layout.views_csv == "a,b" and layout.field == "svc:svc"
    assert layout.elements == 2 + 5
    # A view listed again after another view gets a second run.
    split = [ProjectionSpec("a", ["y"]), ProjectionSpec("b", ["z"]), ProjectionSpec("a", ["x"])]
    assert [r.view for r in layout_of(A, B, projections=split).runs] == ["a", "b", "a"]


def test_fingerprint_follows_what_the_bytes_depend_on() -> None:
    base = layout_of(A, B).fingerprint
    assert layout_of(A, B).fingerprint == base
    # Not on ttls or descriptions: those are checked or shown at read time.
    calmer = msgspec.structs.replace(A, ttl_seconds=5.0, description="changed")
    assert layout_of(calmer, B).fingerprint == base
    reordered = [ProjectionSpec("a", ["x", "y"]), BOTH[1]]
    retyped = view("a", ("x", "Float64"), ("y", "Int64"))
    rekeyed = msgspec.structs.replace(A, join_keys=[FieldSpec("driver_id", "String")])
    fewer = [BOTH[0], ProjectionSpec("b", ["z", "when"])]
    changed = {
        layout_of(A, B, projections=reordered).fingerprint,
        layout_of(retyped, B).fingerprint,
        layout_of(rekeyed, B).fingerprint,
        layout_of(A, B, projections=fewer).fingerprint,
    }
    assert base not in changed and len(changed) == 4


def test_runs_hold_the_json_the_response_shows() -> None:
    layout = layout_of(A, B)
    header, values = encode_run(layout.runs[1], 7, "ts-text", {"z": "é", "when": 1_500_000})
    assert msgspec.msgpack.decode(header) == [7, b'"ts-text"', "PPF"]
    # Values are appended to the vector's array: decode them by giving an array header.
    decoded = msgspec.msgpack.decode(vectors.array_header(3) + values)
    assert decoded == [b'"\xc3\xa9"', b'"1970-01-01T00:00:01.500Z"', b"null"]

    scores = [1.5, math.nan, -math.inf]
    header, values = encode_run(layout.runs[1], 7, "t", {"z": None, "when": 0, "scores": scores})
    assert msgspec.msgpack.decode(header)[2] == "NPP"
    decoded = msgspec.msgpack.decode(vectors.array_header(3) + values)
    assert decoded[2] == b'[1.5,"NaN","-Infinity"]'

    header, _ = encode_run(layout.runs[0], 7, "t", {"x": 0.5, "y": 3})
    assert msgspec.msgpack.decode(header)[2] is None  # every value present


def test_build_split_and_array_headers() -> None:
    for count in (3, 40, 70_000):  # fixarray, array16, array32
        head = vectors.array_header(count)
        assert msgspec.msgpack.decode(head + b"\xc0" * count) == [None] * count
    chunks = [b"\x91\x01", b"\xc0", b"\x02\x03", b"\xc0\xc0"]
    vector = vectors.build(b"\x01" + b"f" * 8, 6, chunks)
    assert vectors.split(vector, 2) == (6, chunks)
    assert msgspec.msgpack.decode(vector[vectors.array_offset(2) :]) == [
        [1],
        None,
        2,
        3,
        None,
        None,
    ]


def test_whole_vector_from_records() -> None:
    layout = layout_of(A, B)
    vector = build_vector(layout, {"a": (5, {"x": 0.25, "y": 9})})
    assert vector[: vectors.TAG_BYTES] == layout.tag
    items = msgspec.msgpack.decode(vector[vectors.array_offset(2) :])
    assert items == [[5, b'"1970-01-01T00:00:00.000005Z"', None], None, b"9", b"0.25"] + [None] * 3
    empty = msgspec.msgpack.decode(layout.empty[vectors.array_offset(2) :])
    assert empty == [None] * 7


def test_index_entries() -> None:
    index = vectors.index_put(None, "svc:a", "v1,v2")
    assert index == b"svc:a=v1,v2"
    assert vectors.index_put(index, "svc:a", "v1,v2") is None  # already there
    index = vectors.index_put(index, "svc:b", "v3")
    assert index is not None
    index = vectors.index_put(index, "svc:a", "v1")  # the layout changed
    assert list(vectors.index_entries(index)) == [("svc:b", ["v3"]), ("svc:a", ["v1"])]
    assert list(vectors.index_entries(None)) == []
