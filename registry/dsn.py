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
    return "postgresql://" + url[match.end() :]


def redact(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` option) masked."""
    text = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", rf"\g<1>{_MASK}@", url)
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
    match = re.search(r"://[^:/@?#]*:([^@/?#]*)@", url)  # in case urlsplit gave up
    if match and match.group(1):
        found += [match.group(1), unquote(match.group(1))]
    # Longest first, so that a password containing another is masked whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message, say) with the URL's password masked wherever it shows."""
    text = text.replace(url, redact(url))
    for secret in secrets_of(url):
        text = text.replace(secret, _MASK)
    return text
