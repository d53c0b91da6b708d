"""Run a repo's ``static_artifacts.py`` once per worker, before it serves.

The file defines ``load_artifacts(app)``; what it loads (a lookup table, a small model)
goes on ``app.state`` or into ``registry.artifacts``, where on-demand feature views find
it. If the hook fails, the worker does not start.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from starlette.applications import Starlette

ARTIFACTS_FILE = "static_artifacts.py"


class ArtifactsFailed(Exception):
    """The repo's static_artifacts.py could not load its artifacts."""


def load_static_artifacts(root: Path, app: Starlette) -> bool:
    """Run the hook if the repo has one; returns whether it did."""
    path = root / ARTIFACTS_FILE
    if not path.is_file():
        return False
    spec = importlib.util.spec_from_file_location("ladle_static_artifacts", path)
    if spec is None or spec.loader is None:
        raise ArtifactsFailed(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
        hook = getattr(module, "load_artifacts", None)
        if not callable(hook):
            raise ArtifactsFailed(f"{path}: defines no load_artifacts(app) function")
        hook(app)
    except ArtifactsFailed:
        raise
    except Exception as exc:
        raise ArtifactsFailed(
            f"{path}: load_artifacts failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path.remove(str(root))
    return True
