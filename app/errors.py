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
    """Raised anywhere on a request path; rendered as a 4xx (or 5xx) JSON response."""

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
_SURROGATE = re.compile(rb"(?P<slashes>\\+)u[dD](?P<unit>[89a-fA-F])[0-9a-fA-F]{2}")


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
    surrogate = _lone_surrogate(body) if "surrogate" in message or "truncated" in message else None
    if surrogate is not None:
        return ApiError(
            422,
            "json_invalid",
            ["body", surrogate],
            f"JSON is malformed: a lone UTF-16 surrogate escape (byte {surrogate}); "
            "strings must be valid Unicode",
        )
    byte = _BYTE.search(message)
    if byte:
        loc_json: Loc = ["body", int(byte.group(1))]
    elif "truncated" in message:
        loc_json = ["body", len(body)]
    else:
        loc_json = ["body"]
    return ApiError(422, "json_invalid", loc_json, message)


def _lone_surrogate(body: bytes) -> int | None:
    """The byte offset of a ``\\uD800``-``\\uDFFF`` escape that is not part of a pair.

    msgspec refuses them (a Python str could not be encoded again) but may call the body
    truncated; this finds the real cause, on the error path only.
    """
    pending: int | None = None  # a high surrogate waiting for its low half
    for match in _SURROGATE.finditer(body):
        if len(match.group("slashes")) % 2 == 0:
            continue  # an escaped backslash followed by text "uD..."
        start = match.start() + len(match.group("slashes")) - 1
        high = match.group("unit")[0] in b"89abAB"
        if pending is not None:
            if not high and start == pending + 6:
                pending = None
                continue
            return pending
        if not high:
            return start
        pending = start
    return pending


def _utf8_error(body: bytes) -> ApiError:
    try:
        body.decode("utf-8")
        offset = 0
    except UnicodeDecodeError as exc:
        offset = exc.start
    return ApiError(
        422,
        "json_invalid",
        ["body", offset],
        f"the body is not valid UTF-8 (byte {offset}); JSON text must be UTF-8",
    )


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode a request body, turning every decode or validation error into a 422."""
    try:
        return decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise from_decode_error(exc, body) from None
    except UnicodeDecodeError:
        # msgspec checks UTF-8 only when it builds a str, and raises Python's own error.
        raise _utf8_error(body) from None
    except RecursionError:
        raise ApiError(422, "too_deep", ["body"], "the JSON body is nested too deeply") from None
