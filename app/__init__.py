"""Ladle's HTTP server: the ASGI app, the read API, the CLI and the server runner.

``main`` is the ASGI app that ``hypercorn app:main`` serves. It reads the feature repo
named by $LADLE_REPO (or the working directory) when the server starts it.
"""

from app.asgi import create_app

main = create_app()

__all__ = ["create_app", "main"]
