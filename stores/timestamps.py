"""Event timestamps as integer microseconds since the Unix epoch (UTC).

Integers compare and store cheaply; conversion to and from text happens only at the edges.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

EPOCH_TEXT = "1970-01-01T00:00:00Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


#: Event times must fall in years 1..9999, as datetime allows; epoch numbers outside that
#: (milliseconds sent as seconds, say) are refused instead of stored far in the future.
MIN_US = -62_135_596_800_000_000
MAX_US = 253_402_300_799_999_999


def check_range(us: int) -> int:
    if not MIN_US <= us <= MAX_US:
        raise ValueError(f"{us} microseconds is outside years 1-9999")
    return us


def from_epoch_seconds(value: float) -> int:
    """Epoch seconds (int or float) to microseconds, range-checked."""
    try:
        return check_range(round(value * 1_000_000))
    except OverflowError:
        raise ValueError(f"{value!r} is not a time in years 1-9999") from None


def now_us() -> int:
    return time.time_ns() // 1000


def from_datetime(value: datetime) -> int:
    """A naive datetime is taken as UTC, as Feast does.

    Range-checked: an offset can move a time at the edge of years 1-9999 out of them
    (``9999-12-31T23:59:59-01:00`` is in year 10000 UTC), and such a time could be
    neither shown as RFC 3339 nor replaced by a newer write.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return check_range((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def parse(text: str) -> int:
    """Parse ISO 8601 / RFC 3339 text; no offset means UTC. Raises ValueError."""
    try:
        parsed = datetime.fromisoformat(text)  # the common forms, in C
    except ValueError:
        pass
    else:
        return _in_range(parsed, text)
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    dot = candidate.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(candidate) and candidate[end].isdigit():
            end += 1
        if end - dot - 1 > 6:  # datetime keeps microseconds; drop nanoseconds
            candidate = candidate[: dot + 7] + candidate[end:]
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    return _in_range(parsed, text)


def _in_range(parsed: datetime, text: str) -> int:
    try:
        return from_datetime(parsed)
    except ValueError:
        raise ValueError(f"{text!r} is outside years 1-9999 (in UTC)") from None


def format_us(us: int) -> str:
    """RFC 3339 with ``Z``; fractional digits only as many as needed (0, 3 or 6).

    On the read path this runs for timestamps of every kind: a view's event times, which
    repeat, and timestamp features, which may not. So nothing depends on a value having
    been seen: the date comes from a small cache by day (``datetime``, in C) and the time
    of day from a table of its 86,400 texts, filled as they are first needed.
    """
    seconds, micros = divmod(us, 1_000_000)
    day, second_of_day = divmod(seconds, 86_400)
    date_text = _day_texts.get(day)
    if date_text is None:
        if len(_day_texts) >= _DAY_TEXTS_MAX:
            _day_texts.clear()
        date_text = _day_texts[day] = (_NAIVE_EPOCH + timedelta(days=day)).date().isoformat()
    time_text = _time_texts[second_of_day]
    if time_text is None:
        hours, rest = divmod(second_of_day, 3600)
        time_text = _time_texts[second_of_day] = f"T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if micros == 0:
        return f"{date_text}{time_text}Z"
    if micros % 1000 == 0:
        return f"{date_text}{time_text}.{micros // 1000:03d}Z"
    return f"{date_text}{time_text}.{micros:06d}Z"


_NAIVE_EPOCH = datetime(1970, 1, 1)
_DAY_TEXTS_MAX = 65_536  # ~180 years of days
_day_texts: dict[int, str] = {}
_time_texts: list[str | None] = [None] * 86_400

#: Whole texts by microsecond value, for :func:`format_many`: at most ~5 MB, and small
#: enough that clearing it when full (values that never repeat) takes about a millisecond.
_TEXTS_MAX = 32_768
_texts: dict[int, str] = {}
_cached_text = _texts.get


def format_many(values: Sequence[int]) -> list[str]:
    """:func:`format_us` of each value, for records' event times: those repeat (a view's
    rows written by one job, hourly or daily data), so whole texts are remembered and a
    column of known values costs one C-level lookup each."""
    texts = list(map(_cached_text, values))
    if None in texts:
        if len(_texts) + len(texts) > _TEXTS_MAX:
            _texts.clear()
        for i, text in enumerate(texts):
            if text is None:
                value = values[i]
                texts[i] = _texts[value] = format_us(value)
    return texts  # type: ignore[return-value]
