"""Stored value forms: what goes in comes back out, and bad input is refused."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from stores import codec, timestamps


@pytest.mark.parametrize(
    ("dtype", "value", "stored", "shown"),
    [
        ("Int64", 2**62, 2**62, 2**62),
        ("Int64", "17", 17, 17),
        ("Int32", -5, -5, -5),
        ("Float64", 0.1, 0.1, 0.1),
        ("Float32", 0.1, 0.10000000149011612, 0.10000000149011612),
        ("Float64", "NaN", math.nan, "NaN"),
        ("Float32", float("inf"), math.inf, "Infinity"),
        ("Float64", "-Infinity", -math.inf, "-Infinity"),
        ("String", "héllo ✓", "héllo ✓", "héllo ✓"),
        ("Json", {"a": [1, 2]}, '{"a":[1,2]}', '{"a":[1,2]}'),
        ("Json", '{"a": 1}', '{"a": 1}', '{"a": 1}'),
        ("Bytes", b"\x00\xff", b"\x00\xff", b"\x00\xff"),
        ("Bytes", "AP8=", b"\x00\xff", b"\x00\xff"),
        ("Bool", True, True, True),
        ("UnixTimestamp", "2024-01-02T03:04:05.5Z", 1704164645500000, "2024-01-02T03:04:05.500Z"),
        (
            "UnixTimestamp",
            datetime(2024, 1, 2, tzinfo=UTC),
            1704153600000000,
            "2024-01-02T00:00:00Z",
        ),
        ("Map", {"k": "v", "n": {"x": 1}}, {"k": "v", "n": {"x": 1}}, {"k": "v", "n": {"x": 1}}),
        # A client's map with just these keys is kept: only offline reads have that form.
        ("Map", {"key": ["a"], "value": [1]}, {"key": ["a"], "value": [1]}, None),
        ("Array(Int64)", [1, 2, 3], [1, 2, 3], [1, 2, 3]),
        ("Array(Float64)", [1.5, math.nan], [1.5, math.nan], [1.5, "NaN"]),
        ("Array(String)", [], [], []),
        ("String", None, None, None),
    ],
)
def test_round_trip(dtype: str, value: object, stored: object, shown: object) -> None:
    normalized = codec.normalizer(dtype)(value)
    blob = codec.encode_record(123, {"f": normalized})
    event_ts, values = codec.decode_record(blob)
    assert event_ts == 123
    back = values["f"]
    if isinstance(stored, float) and math.isnan(stored):
        assert isinstance(back, float) and math.isnan(back)
    elif isinstance(stored, list) and any(isinstance(x, float) and math.isnan(x) for x in stored):
        assert [str(x) for x in back] == [str(x) for x in stored]
    else:
        assert back == stored
    convert = codec.output_converter(dtype)
    assert (convert(back) if convert else back) == (stored if shown is None else shown)


def test_offline_maps_in_duckdbs_key_value_form() -> None:
    normalize = codec.offline_normalizer("Map")
    assert normalize({"key": ["a", "b"], "value": [1, None]}) == {"a": 1, "b": None}
    assert normalize({"x": 1}) == {"x": 1}
    assert normalize(None) is None
    with pytest.raises(ValueError, match="keys must be strings"):
        normalize({"key": [1], "value": [2]})
    assert codec.offline_normalizer("Int64") is codec.normalizer("Int64")


def test_strings_must_be_valid_unicode() -> None:
    """A transformation can return a lone surrogate; it is refused, not stored."""
    for dtype, value in [
        ("String", "ok \ud800"),
        ("Array(String)", ["fine", "\udfff"]),
        ("Map", {"k": "\ud800"}),
        ("Map", {"\ud800": 1}),
        ("Json", {"k": "\ud800"}),
        ("Json", '"\ud800"'),
    ]:
        with pytest.raises(ValueError):
            codec.normalizer(dtype)(value)
    assert codec.normalizer("String")("héllo ✓ 𝄞") == "héllo ✓ 𝄞"


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("Int64", True),
        ("Int64", "x"),
        ("Int64", 2**64),
        ("Int32", 2**31),
        ("Int64", 1.5),
        ("Float32", "abc"),
        ("Float32", 1e300),
        ("Float64", [1]),
        ("String", 5),
        ("Bool", "true"),
        ("Json", "{not json"),
        ("Bytes", "***"),
        ("Map", [1]),
        ("Map", {1: "a"}),
        ("Array(Int64)", "1,2"),
        ("Array(Int64)", [1, "x"]),
        ("UnixTimestamp", "yesterday"),
    ],
)
def test_bad_values_are_refused(dtype: str, value: object) -> None:
    with pytest.raises(ValueError):
        codec.normalizer(dtype)(value)


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-21T08:00:00", 1795248000000000),
        ("2026-11-21T09:00:00+01:00", 1795248000000000),
        ("2026-11-21T08:00:00.123456789Z", 1795248000123456),
        ("1969-12-31T23:59:59.5Z", -500000),
    ],
)
def test_timestamps_parse(text: str, us: int) -> None:
    assert timestamps.parse(text) == us


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1795248000000000, "2026-11-21T08:00:00Z"),
        (1795248000120000, "2026-11-21T08:00:00.120Z"),
        (1795248000000001, "2026-11-21T08:00:00.000001Z"),
        (-500000, "1969-12-31T23:59:59.500Z"),
    ],
)
def test_timestamps_format(us: int, text: str) -> None:
    assert timestamps.format_us(us) == text
