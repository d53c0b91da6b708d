"""Check and convert the entity values of a request to their join keys' types."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from app.errors import ApiError
from stores.codec import INT32_RANGE, INT64_RANGE, normalizer

Coercer = Callable[[Any], Any]
_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def _int_coercer(dtype: str) -> Coercer:
    low, high = INT32_RANGE if dtype == "Int32" else INT64_RANGE

    def coerce(value: Any) -> Any:
        if type(value) is int:
            number = value
        elif type(value) is str and _INTEGER_TEXT.fullmatch(value):
            number = int(value)  # Feast accepts "1001" for an integer key
        else:
            raise ValueError(f"expected an integer ({dtype})")
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range for {dtype}")
        return number

    return coerce


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise ValueError("expected a string")


def _bytes(value: Any) -> Any:
    if type(value) is str:
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            pass
    raise ValueError("expected base64 text (Bytes)")


def coercer(dtype: str) -> Coercer:
    if dtype in ("Int32", "Int64"):
        return _int_coercer(dtype)
    if dtype == "String":
        return _string
    if dtype == "Bytes":
        return _bytes
    raise ValueError(f"type {dtype} cannot be a join key")


def request_coercer(dtype: str) -> Coercer:
    """Request data (for on-demand views) takes any value its feature type accepts."""
    return normalizer(dtype)


def coerce_column(name: str, values: list[Any], coerce: Coercer) -> list[Any]:
    """Convert one entity column; the error names the key and the row."""
    try:
        return [coerce(v) for v in values]
    except (ValueError, TypeError, OverflowError):
        pass
    for row, value in enumerate(values):
        try:
            coerce(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ApiError(
                422,
                "entity_value",
                ["body", "entities", name, row],
                f"{exc} (got {value!r})",
                value,
            ) from None
    raise AssertionError("unreachable")


def check_shape(entities: dict[str, Any]) -> int:
    """Every column must be a non-empty list, all of one length; returns the row count."""
    if not entities:
        raise ApiError(
            422, "empty", ["body", "entities"], "must name at least one join key with its values"
        )
    for name, values in entities.items():
        if type(values) is not list:
            raise ApiError(
                422,
                "type_error",
                ["body", "entities", name],
                f"expected a list of values, got {type(values).__name__}",
                values,
            )
    lengths = {name: len(values) for name, values in entities.items()}
    for name, length in lengths.items():
        if length == 0:
            raise ApiError(422, "empty", ["body", "entities", name], "must hold at least one value")
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        first = next(iter(lengths))
        odd = next(n for n, length in lengths.items() if length != lengths[first])
        raise ApiError(
            422,
            "ragged",
            ["body", "entities", odd],
            f"entity columns must have the same length; got {described}",
        )
    return next(iter(lengths.values()))
