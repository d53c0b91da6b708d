"""Client errors: one JSON shape for every mistake, naming the field and the problem.

    {"detail": [{"type": "...", "loc": ["body", "features", 0], "msg": "...", "input": ...}]}

It is the shape FastAPI (and so Feast) uses for validation errors, so clients that
already parse Feast's 422s can parse every Ladle error the same way.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

Loc = list[str | int]


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    type: str
    loc: Loc
    msg: str
    input: Any = msgspec.UNSET


class ErrorBody(msgspec.Struct):
    detail: list[ErrorDetail]


class ApiError(Exception):
    """Raised anywhere on a request path; rendered as a 4xx (or 503) JSON response."""

    def __init__(
        self,
        status: int,
        type: str,
        loc: Loc,
        msg: str,
        input: Any = msgspec.UNSET,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.details = [ErrorDetail(type=type, loc=loc, msg=msg, input=input)]
        self.headers = headers or {}

    def body(self) -> bytes:
        return _encoder.encode(ErrorBody(self.details))


_encoder = msgspec.json.Encoder()
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PATH_PART = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]|\[(?P<key>[^\]]*)\]")
_BYTE = re.compile(r"\(byte (\d+)\)")


def _loc(path: str) -> Loc:
    loc: Loc = ["body"]
    for part in _PATH_PART.finditer(path):
        if part.group("name") is not None:
            loc.append(part.group("name"))
        elif part.group("index") is not None:
            loc.append(int(part.group("index")))
        else:
            loc.append(part.group("key").strip("'\""))
    return loc


def from_decode_error(exc: msgspec.MsgspecError, body: bytes) -> ApiError:
    """Translate msgspec's decode and validation errors into the API's error shape."""
    message = str(exc)
    if not body.strip():
        return ApiError(422, "missing", ["body"], "a JSON request body is required")
    if isinstance(exc, msgspec.ValidationError):
        match = _AT_PATH.search(message)
        path = match.group("path") if match else ""
        text = message[: match.start()] if match else message
        loc = _loc(path)
        missing = re.fullmatch(r"Object missing required field `(.+)`", text)
        if missing:
            return ApiError(422, "missing", [*loc, missing.group(1)], "field required")
        return ApiError(422, "type_error", loc, text)
    byte = _BYTE.search(message)
    if byte:
        loc_json: Loc = ["body", int(byte.group(1))]
    elif "truncated" in message:
        loc_json = ["body", len(body)]
    else:
        loc_json = ["body"]
    return ApiError(422, "json_invalid", loc_json, message)


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode a request body, turning every decode or validation error into a 422."""
    try:
        return decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise from_decode_error(exc, body) from None
    except RecursionError:
        raise ApiError(422, "too_deep", ["body"], "the JSON body is nested too deeply") from None
