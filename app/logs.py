"""Logging for the server's own messages (the access log is app/access_log.py)."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send ``ladle.*`` messages to stderr at ``level``, once per process."""
    logger = logging.getLogger("ladle")
    if not any(getattr(h, "ladle", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.ladle = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())
