"""Feature value types, named as in Feast so that definitions port by changing imports.

A type is a small immutable object with a canonical name ("Int64", "Array(Float32)").
The registry stores the name; everything downstream (codecs, coercion) dispatches on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DType:
    """A feature or entity value type."""

    name: str
    element: DType | None = None

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


Int32 = DType("Int32")
Int64 = DType("Int64")
Float32 = DType("Float32")
Float64 = DType("Float64")
String = DType("String")
Bytes = DType("Bytes")
Bool = DType("Bool")
UnixTimestamp = DType("UnixTimestamp")
Json = DType("Json")
Map = DType("Map")

PRIMITIVES: dict[str, DType] = {
    t.name: t
    for t in (Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp, Json, Map)
}
ARRAY_ELEMENTS = frozenset(
    {"Int32", "Int64", "Float32", "Float64", "String", "Bytes", "Bool", "UnixTimestamp"}
)
#: Types an entity join key may have.
KEY_TYPES = frozenset({"Int32", "Int64", "String", "Bytes"})


def Array(element: DType) -> DType:  # Feast spells it as a constructor
    """A list of a primitive type, e.g. ``Array(Float32)``."""
    if not isinstance(element, DType) or element.name not in ARRAY_ELEMENTS:
        raise TypeError(f"Array() takes one of {sorted(ARRAY_ELEMENTS)}, not {element!r}")
    return DType(f"Array({element.name})", element)


class ValueType(enum.Enum):
    """Feast's entity value types, accepted by ``Entity(value_type=...)``."""

    UNKNOWN = "UNKNOWN"
    INT32 = "Int32"
    INT64 = "Int64"
    STRING = "String"
    BYTES = "Bytes"
    FLOAT = "Float32"
    DOUBLE = "Float64"
    BOOL = "Bool"
    UNIX_TIMESTAMP = "UnixTimestamp"
