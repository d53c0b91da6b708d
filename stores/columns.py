"""Check a columnar frame (column -> list of values) against the columns a write needs.

Everything is validated before anything is written; the first problem is reported with
its column and, where there is one, its row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stores import codec, timestamps


class ColumnError(ValueError):
    def __init__(self, column: str | None, row: int | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    #: A feature type name, or "timestamp" for an event/created time column.
    dtype: str
    required: bool = True
    nullable: bool = True


def _timestamp(value: Any) -> int:
    if isinstance(value, str):
        return timestamps.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timestamps.from_epoch_seconds(value)
    raise ValueError(f"expected an ISO 8601 timestamp, not {type(value).__name__}")


def validate_frame(
    frame: Mapping[str, Any], columns: Sequence[ColumnSpec]
) -> tuple[int, dict[str, list[Any]]]:
    """Return the row count and the needed columns in stored form; raise ColumnError."""
    if not isinstance(frame, Mapping) or not frame:
        raise ColumnError(None, None, "must hold at least one column")
    for name, values in frame.items():
        if not isinstance(values, list):
            raise ColumnError(name, None, f"expected a list of values, got {type(values).__name__}")
    lengths = {len(values) for values in frame.values()}
    if len(lengths) > 1:
        described = ", ".join(f"{name}: {len(values)}" for name, values in frame.items())
        first = len(next(iter(frame.values())))
        odd = next(name for name, values in frame.items() if len(values) != first)
        raise ColumnError(odd, None, f"columns must have the same length; got {described}")
    rows = lengths.pop()
    if rows == 0:
        raise ColumnError(None, None, "must hold at least one row")
    out: dict[str, list[Any]] = {}
    for spec in columns:
        values = frame.get(spec.name)
        if values is None:
            if spec.required:
                raise ColumnError(spec.name, None, f"column {spec.name!r} is required")
            continue
        convert = _timestamp if spec.dtype == "timestamp" else codec.normalizer(spec.dtype)
        converted = []
        for row, value in enumerate(values):
            if value is None and not spec.nullable:
                raise ColumnError(spec.name, row, "must not be null")
            try:
                converted.append(convert(value))
            except (ValueError, TypeError, OverflowError) as exc:
                raise ColumnError(spec.name, row, f"{exc}") from None
        out[spec.name] = converted
    return rows, out
