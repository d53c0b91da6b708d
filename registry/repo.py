"""Import a feature repo's Python files and collect the objects they declare."""

from __future__ import annotations

import fnmatch
import importlib
import sys
import traceback
from pathlib import Path

from registry.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    PushSource,
)

IGNORE_FILE = ".ladleignore"
_SKIPPED_DIRS = {"__pycache__", "site-packages", "node_modules", "data"}
_KINDS = (Entity, FileSource, PushSource, FeatureView, FeatureService)


class RepoError(Exception):
    """The repo's Python files cannot be loaded, or what they declare is inconsistent."""


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def repo_python_files(root: Path) -> list[Path]:
    """The repo's .py files, skipping hidden folders, virtualenvs and ignored patterns."""
    patterns = _ignore_patterns(root)
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        parts = relative.parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts[:-1]):
            continue
        if any(part.endswith("venv") for part in parts[:-1]):
            continue
        text = relative.as_posix()
        if any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(parts[0], p) for p in patterns):
            continue
        files.append(path)
    return files


def load_definitions(root: Path) -> list[tuple[Definition, str]]:
    """Import every repo file; return each declared object with the file it came from.

    An object imported into several files is listed once, under the first file.
    """
    root = root.resolve()
    files = repo_python_files(root)
    names = [".".join(p.relative_to(root).with_suffix("").parts) for p in files]
    for name in list(sys.modules):
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if name in names or module_file.startswith(str(root) + "/"):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    found: list[tuple[Definition, str]] = []
    seen: set[int] = set()
    try:
        for path, name in zip(files, names, strict=True):
            try:
                module = importlib.import_module(name)
            except Exception:
                detail = traceback.format_exc(limit=-3)
                raise RepoError(f"{path}: failed to import:\n{detail}") from None
            for value in vars(module).values():
                if isinstance(value, _KINDS) and id(value) not in seen:
                    seen.add(id(value))
                    found.append((value, str(path.relative_to(root))))
    finally:
        sys.path.remove(str(root))
    return found
