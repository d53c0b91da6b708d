"""Property tests: every value type's stored form round-trips to what a read shows.

The HTTP-level round trip through both online stores is tests/app/test_value_round_trip.py.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores import codec, timestamps
from tests.value_strategies import OUT_OF_RANGE, VALUES, same_json


def shown(dtype: str, sent: Any) -> Any:
    """Normalize, store, load and convert for output, as a write then a read do."""
    blob = codec.encode_record(7, {"f": codec.normalizer(dtype)(sent)})
    event_ts, values = codec.decode_record(blob)
    assert event_ts == 7
    convert = codec.output_converter(dtype)
    return convert(values["f"]) if convert else values["f"]


def check_shown(dtype: str, actual: Any, expected: Any) -> None:
    if dtype == "Json":  # text: compare what it means, not how it is spaced
        assert isinstance(actual, str)
        assert orjson.loads(actual) == orjson.loads(expected)
    else:
        assert same_json(actual, expected), (actual, expected)
    msgspec.json.encode(actual)  # and the response encoder can write it


@pytest.mark.parametrize("dtype", sorted(VALUES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_round_trip(dtype: str, data: st.DataObject) -> None:
    sent, expected = data.draw(VALUES[dtype])
    check_shown(dtype, shown(dtype, sent), expected)


@pytest.mark.parametrize("dtype", sorted(VALUES))
def test_null_round_trips(dtype: str) -> None:
    assert shown(dtype, None) is None


@pytest.mark.parametrize(
    ("dtype", "value"), [(d, v) for d, values in OUT_OF_RANGE.items() for v in values]
)
def test_out_of_range_values_are_refused(dtype: str, value: Any) -> None:
    with pytest.raises(ValueError):
        codec.normalizer(dtype)(value)


@settings(max_examples=200, deadline=None)
@given(st.floats())
def test_float_edges(value: float) -> None:
    """NaN, infinities and -0.0 keep their meaning in both widths."""
    for dtype in ("Float32", "Float64"):
        try:
            out = shown(dtype, value)
        except ValueError:
            assert dtype == "Float32" and math.isfinite(value) and abs(value) > 3.4e38
            continue
        if math.isnan(value):
            assert out == "NaN"
        elif math.isinf(value):
            assert out == ("Infinity" if value > 0 else "-Infinity")
        else:
            assert isinstance(out, float) and math.copysign(1, out) == math.copysign(1, value)


@settings(max_examples=200, deadline=None)
@given(st.integers(timestamps.MIN_US, timestamps.MAX_US))
def test_timestamp_text_round_trips(us: int) -> None:
    """What a read shows for a time parses back to the same microsecond."""
    text = timestamps.format_us(us)
    assert timestamps.parse(text) == us
    assert datetime.fromisoformat(text.replace("Z", "+00:00"))
