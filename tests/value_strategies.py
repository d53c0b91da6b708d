"""Hypothesis strategies for feature values: what a client sends, and what it must read back.

Each strategy draws ``(sent, shown)``: ``sent`` is a JSON-ready value a write accepts for
the type, ``shown`` the value a read response must hold for it (before JSON encoding).
Compare them with :func:`same_json`, which tells -0.0 from 0.0 and NaN from null.
"""

from __future__ import annotations

import base64
import math
import struct
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import strategies as st

from stores import timestamps

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
NON_FINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Pair = tuple[Any, Any]


def same_json(a: Any, b: Any) -> bool:
    return msgspec.json.encode(a) == msgspec.json.encode(b)


def shown_float(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _sent_float(value: float) -> Any:
    """JSON has no NaN or infinities: clients send them as Feast's strings."""
    return value if math.isfinite(value) else shown_float(value)


def _as_float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


float64s = st.floats().map(lambda f: (_sent_float(f), shown_float(f)))
#: Integers as big as a double holds (and beyond 64 bits) are taken as numbers too.
big_ints_as_float64 = st.integers(-(10**300), 10**300).map(lambda n: (n, float(n)))
float32s = st.one_of(
    st.floats(width=32),
    st.floats(-FLOAT32_MAX, FLOAT32_MAX),  # doubles, rounded to single precision
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0]),
).map(lambda f: (_sent_float(f), shown_float(_as_float32(f) if math.isfinite(f) else f)))

# Years 1..9999 in UTC; a timezone may move a time, so keep a day away from the edges.
_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)
unix_timestamps = st.one_of(
    st.integers(timestamps.MIN_US // 10**6, timestamps.MAX_US // 10**6).map(
        lambda s: (s, timestamps.format_us(s * 10**6))
    ),
    _datetimes.map(lambda d: (d.isoformat(), timestamps.format_us(timestamps.from_datetime(d)))),
)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(*INT64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _json_pair(value: Any, as_text: bool) -> Pair:
    text = msgspec.json.encode(value).decode()
    # Sent as JSON text, it is kept as written; sent as a value, it is written as JSON. A
    # string is always taken as JSON text, so a JSON string value is sent as '"..."'.
    return (text, text) if as_text or isinstance(value, str) else (value, text)


SCALARS: dict[str, st.SearchStrategy[Pair]] = {
    "Int32": st.integers(*INT32).map(lambda n: (n, n)),
    "Int64": st.integers(*INT64).map(lambda n: (n, n)),
    "Float32": float32s,
    "Float64": st.one_of(float64s, big_ints_as_float64),
    "String": st.text().map(lambda s: (s, s)),
    "Bytes": st.binary().map(lambda b: (base64.b64encode(b).decode(), b)),
    "Bool": st.booleans().map(lambda b: (b, b)),
    "UnixTimestamp": unix_timestamps,
    "Json": st.builds(_json_pair, json_values.filter(lambda v: v is not None), st.booleans()),
    "Map": st.dictionaries(st.text(), json_values, max_size=5).map(lambda m: (m, m)),
}
ARRAY_ELEMENTS = (
    "Int32",
    "Int64",
    "Float32",
    "Float64",
    "String",
    "Bytes",
    "Bool",
    "UnixTimestamp",
)


def _array(element: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    items = st.lists(st.one_of(st.none().map(lambda _: (None, None)), element), max_size=5)
    return items.map(lambda pairs: ([s for s, _ in pairs], [v for _, v in pairs]))


VALUES: dict[str, st.SearchStrategy[Pair]] = {
    **SCALARS,
    **{f"Array({name})": _array(SCALARS[name]) for name in ARRAY_ELEMENTS},
}

#: Values each type must refuse at write time (a 422 naming the column and row).
OUT_OF_RANGE: dict[str, list[Any]] = {
    "Int32": [2**31, -(2**31) - 1, 2**64],
    "Int64": [2**63, -(2**63) - 1, 10**30],
    "Float32": [1e39, -1e300, 2**200],
    "Float64": [10**400, -(10**400)],
    "UnixTimestamp": [10**12, -(10**12), "9999-12-31T23:59:59-01:00", 1e300],
    "Array(Int64)": [[1, 2**63]],
    "Array(Float32)": [[0.5, 1e39]],
}


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat()
