"""PostgreSQL connection URLs: accepted forms, and their passwords kept out of any text.

A sql registry's ``path`` carries the password (``postgresql://user:pass@host/db``), so
every message, log line and description built from it goes through :func:`redact` or
:func:`scrub` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

#: Feast's SQL registry takes SQLAlchemy URLs; their driver part is ignored here.
_SCHEME = re.compile(r"^(postgresql|postgres)(\+[A-Za-z0-9_]+)?://", re.IGNORECASE)
_MASK = "***"


class DsnError(ValueError):
    """Not a PostgreSQL URL Ladle can use; the message holds no password."""


def normalize(url: str) -> str:
    """The URL as asyncpg takes it (``postgresql://...``); raises :class:`DsnError`."""
    match = _SCHEME.match(url)
    if match is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        shown = f"{scheme}://" if scheme else redact(url)
        raise DsnError(
            f"{shown!r} is not a PostgreSQL URL; a sql registry needs "
            "postgresql://user:password@host:port/database"
        )
    normalized = "postgresql://" + url[match.end() :]
    written = _written_password(normalized)
    try:
        parsed = urlsplit(normalized).password
    except ValueError:
        parsed = None
    if written and parsed != written:
        # e.g. a password with "/", "?", "#" or "@" in it: URL parsers disagree on where it
        # ends, so it could be sent to the wrong place or shown in a message.
        raise DsnError(
            "the password in the PostgreSQL URL must be percent-encoded (/ ? # @ and % "
            "as %2F %3F %23 %40 %25), or left out and given as $PGPASSWORD"
        )
    return normalized


#: The user part's password: from after "user:" to the last "@" of the URL, so that a
#: password holding "/", "?", "#" or "@" is masked whole (a mask too long is the safe side).
_USERINFO_PASSWORD = re.compile(r"(://[^:/@?#]*:)(.*)@(?=[^@]*$)", re.DOTALL)


def _written_password(url: str) -> str:
    match = _USERINFO_PASSWORD.search(url)
    return match.group(2) if match else ""


def redact(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` option) masked."""
    text = _USERINFO_PASSWORD.sub(rf"\g<1>{_MASK}@", url)
    return re.sub(r"([?&]password=)[^&#]*", rf"\g<1>{_MASK}", text, flags=re.IGNORECASE)


def secrets_of(url: str) -> list[str]:
    """The password as written and as decoded, wherever the URL holds it."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    except ValueError:
        pass
    written = _written_password(url)  # in case urlsplit gave up or split it wrongly
    if written:
        found += [written, unquote(written)]
    # Longest first, so that a password containing another is masked whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message, say) with the URL's password masked wherever it shows."""
    text = text.replace(url, redact(url))
    for secret in secrets_of(url):
        text = text.replace(secret, _MASK)
    return text
