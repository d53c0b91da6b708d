"""Entity keys: the bytes that name one entity's record in an online store.

Layout (readable in ``redis-cli``)::

    <project>:<join_key>=<value>[|<join_key>=<value>...]

Join keys are sorted by name. Integers are written in decimal, strings as JSON strings
(quoted, escaped), bytes as ``b64:<base64>``. Every value form is self-delimiting, so
distinct entities never share a key. Views with the same join keys share one record.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import orjson

KeyEncoder = Callable[[Sequence[Any]], bytes]


def _value_encoder(dtype: str) -> Callable[[Any], bytes]:
    if dtype in ("Int32", "Int64"):
        return lambda v: str(v).encode()
    if dtype == "String":
        return orjson.dumps
    if dtype == "Bytes":
        return lambda v: b"b64:" + base64.b64encode(v)
    raise ValueError(f"type {dtype} cannot be a join key")


def project_prefix(project: str) -> bytes:
    """Every entity key of a project starts with this."""
    return f"{project}:".encode()


def make_key_encoder(project: str, join_keys: Sequence[tuple[str, str]]) -> KeyEncoder:
    """Build the encoder for values given in ``join_keys`` order (name, dtype)."""
    order = sorted(range(len(join_keys)), key=lambda i: join_keys[i][0])
    if len(join_keys) == 1:
        name, dtype = join_keys[0]
        prefix = project_prefix(project) + f"{name}=".encode()
        encode_one = _value_encoder(dtype)
        return lambda values: prefix + encode_one(values[0])

    prefix = project_prefix(project)
    parts = [(f"{join_keys[i][0]}=".encode(), _value_encoder(join_keys[i][1]), i) for i in order]

    def encode(values: Sequence[Any]) -> bytes:
        return prefix + b"|".join(label + enc(values[i]) for label, enc, i in parts)

    return encode


def distinct_keys(
    encode: KeyEncoder, key_columns: Sequence[Sequence[Any]]
) -> tuple[list[bytes], list[int] | None]:
    """The distinct entity keys of a request's rows (each read once), and for each row the
    position of its key among them; None when every row has its own key (the usual case:
    nothing to fan out)."""
    keys = [encode(values) for values in zip(*key_columns, strict=True)]
    distinct = dict.fromkeys(keys)
    if len(distinct) == len(keys):
        return keys, None
    index = {key: i for i, key in enumerate(distinct)}
    return list(distinct), [index[key] for key in keys]
