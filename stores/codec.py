"""How feature values are stored, checked on the way in, and shown on the way out.

A stored record is one view's values for one entity: a MessagePack array
``[event_ts_us, {feature_name: value}]``. Keying values by name keeps old records
readable after features are added or reordered; MessagePack decodes in C.

Stored value forms: ints as ints, Float32 rounded to single precision (then widened, as
Feast shows them), strings and Json as text, Bytes as binary, UnixTimestamp as integer
microseconds, Map as a mapping, Array(T) as a list of T's stored form. None is null.
"""

from __future__ import annotations

import base64
import functools
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import msgspec
import orjson

from stores import timestamps

Record = tuple[int, dict[str, Any]]
Normalizer = Callable[[Any], Any]
OutputConverter = Callable[[Any], Any]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, dict[str, Any]])
_float32 = struct.Struct("<f")

INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)


def encode_record(event_ts_us: int, values: Mapping[str, Any]) -> bytes:
    return _encoder.encode((event_ts_us, values))


def decode_record(blob: bytes) -> Record:
    return _decoder.decode(blob)


# ---- write side: input values to stored form -------------------------------------------


def _int_normalizer(low: int, high: int, name: str) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError(f"expected {name}, got a boolean")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(f"expected {name}, got {value!r}") from None
        if not isinstance(value, int):
            raise ValueError(f"expected {name}, got {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {name}")
        return value

    return normalize


def _float_normalizer(single: bool) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(value, str):
            lowered = value.strip().lower()
            special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}
            if lowered not in special:
                raise ValueError(f"expected a number, got {value!r}")
            value = special[lowered]
        if not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{value} is out of range for a float") from None
        if single and math.isfinite(number):
            try:
                number = _float32.unpack(_float32.pack(number))[0]
            except OverflowError:
                raise ValueError(f"{value} is out of range for Float32") from None
        return number

    return normalize


def _string(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isascii():  # isascii() is O(1); only other strings are checked
            _check_unicode(value)
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _check_unicode(text: str) -> None:
    """Strings must be valid Unicode: a lone surrogate can be neither stored nor shown.

    JSON bodies cannot carry one (the decoder refuses them); a transformation can.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        problem = f"a lone surrogate {text[exc.start]!r} at index {exc.start}"
        raise ValueError(f"a string must be valid Unicode; it holds {problem}") from None


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("expected JSON text, got a string that is not valid JSON") from None
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ValueError(f"value cannot be written as JSON: {exc}") from None


def _bytes(value: Any) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("expected base64 text for Bytes") from None
    raise ValueError(f"expected bytes, got {type(value).__name__}")


def _bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"expected a boolean, got {type(value).__name__}")


def _timestamp(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return timestamps.from_datetime(value)
    if isinstance(value, date):
        return timestamps.from_datetime(datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        return timestamps.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timestamps.from_epoch_seconds(value)  # numbers are seconds since the epoch
    raise ValueError(f"expected a timestamp, not {type(value).__name__}")


def _map(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("Map keys must be strings")
        try:
            stored = msgspec.convert(msgspec.to_builtins(dict(value)), dict[str, Any])
            _encoder.encode(stored)  # refuse what MessagePack cannot hold (ints past 64 bits)
        except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
            raise ValueError(f"Map value cannot be stored: {exc}") from None
        return stored
    raise ValueError(f"expected a mapping, got {type(value).__name__}")


def _offline_map(value: Any) -> Any:
    """Older DuckDB releases return a MAP as ``{"key": [...], "value": [...]}``.

    Only offline reads get this reading: a client's Map that happens to have just these
    two keys is stored as sent.
    """
    if isinstance(value, Mapping) and set(value) == {"key", "value"}:
        keys, values = value["key"], value["value"]
        if isinstance(keys, list) and isinstance(values, list) and len(keys) == len(values):
            try:
                value = dict(zip(keys, values, strict=True))
            except TypeError:
                raise ValueError("Map keys must be strings") from None
    return _map(value)


def _array_normalizer(element: Normalizer) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return [element(item) for item in value]

    return normalize


_SCALARS: dict[str, Normalizer] = {
    "Int32": _int_normalizer(*INT32_RANGE, "Int32"),
    "Int64": _int_normalizer(*INT64_RANGE, "Int64"),
    "Float32": _float_normalizer(single=True),
    "Float64": _float_normalizer(single=False),
    "String": _string,
    "Json": _json_text,
    "Bytes": _bytes,
    "Bool": _bool,
    "UnixTimestamp": _timestamp,
    "Map": _map,
}


@functools.cache
def normalizer(dtype: str) -> Normalizer:
    """The function that checks an input value and returns its stored form."""
    if dtype.startswith("Array(") and dtype.endswith(")"):
        return _array_normalizer(_SCALARS[dtype[len("Array(") : -1]])
    return _SCALARS[dtype]


def offline_normalizer(dtype: str) -> Normalizer:
    """As :func:`normalizer`, for values read from offline data by DuckDB."""
    return _offline_map if dtype == "Map" else normalizer(dtype)


# ---- read side: stored form to JSON-ready value ----------------------------------------


def _float_out(value: Any) -> Any:
    if value is None or math.isfinite(value):
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _timestamp_out(value: Any) -> Any:
    return None if value is None else timestamps.format_us(value)


def _array_out(element: OutputConverter) -> OutputConverter:
    def convert(value: Any) -> Any:
        return None if value is None else [element(item) for item in value]

    return convert


def output_converter(dtype: str) -> OutputConverter | None:
    """A function to apply before JSON encoding, or None when the stored form is final.

    JSON has no NaN or infinities, so floats that are not finite become the strings
    "NaN", "Infinity" and "-Infinity", as Feast writes them.
    """
    if dtype in ("Float32", "Float64"):
        return _float_out
    if dtype == "UnixTimestamp":
        return _timestamp_out
    if dtype in ("Array(Float32)", "Array(Float64)"):
        return _array_out(_float_out)
    if dtype == "Array(UnixTimestamp)":
        return _array_out(_timestamp_out)
    return None


ColumnConverter = Callable[[Sequence[Any]], Sequence[Any]]


def _float_column(values: Sequence[Any]) -> Sequence[Any]:
    # One C-level sum tells the usual case: any NaN or infinity makes the sum non-finite
    # (so does an overflow of finite values, which only costs the slower path).
    try:
        if math.isfinite(sum(values)):
            return values
    except TypeError:
        pass
    return [_float_out(value) for value in values]


def _float_array_column(values: Sequence[Any]) -> Sequence[Any]:
    try:
        if math.isfinite(sum(map(sum, values))):
            return values
    except TypeError:
        pass
    convert = _array_out(_float_out)
    return [convert(value) for value in values]


def _timestamp_column(values: Sequence[Any]) -> Sequence[Any]:
    return list(map(timestamps.format_us, values))


def _per_value(convert: OutputConverter) -> ColumnConverter:
    def column(values: Sequence[Any]) -> Sequence[Any]:
        return [convert(value) for value in values]

    return column


def column_converter(dtype: str) -> ColumnConverter | None:
    """:func:`output_converter` for a whole column of stored values with no nulls, or None
    when the stored form is final. Float columns are checked in one pass and returned
    as they are when every value is finite."""
    if dtype in ("Float32", "Float64"):
        return _float_column
    if dtype in ("Array(Float32)", "Array(Float64)"):
        return _float_array_column
    if dtype == "UnixTimestamp":
        # Not format_many: feature values (last login, ...) rarely repeat the way event
        # times do, and would only churn the cache of those.
        return _timestamp_column
    convert = output_converter(dtype)
    return None if convert is None else _per_value(convert)
