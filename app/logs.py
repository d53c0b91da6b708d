"""Logging for the server: readable lines for its own messages, JSON lines for access."""

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


def access_logger() -> logging.Logger:
    """``ladle.access``: each record is one JSON line on stdout, nothing added to it."""
    logger = logging.getLogger("ladle.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger
