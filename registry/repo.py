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
    OnDemandFeatureView,
    PushSource,
    RequestSource,
)
from registry.permissions import Permission

IGNORE_FILE = ".ladleignore"
_SKIPPED_DIRS = {"__pycache__", "site-packages", "node_modules", "data"}
_KINDS = (
    Entity, FileSource, PushSource, FeatureView, FeatureService, RequestSource,
    OnDemandFeatureView, Permission,
)  # fmt: skip
#: What a repo file may declare.
RepoObject = Definition | Permission


class RepoError(Exception):
    """The repo's Python files cannot be loaded, or what they declare is inconsistent."""


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(parts: tuple[str, ...], patterns: list[str]) -> bool:
    """Whether a pattern matches the file's path or the path of a folder it is in.

    Patterns are relative to the repo root; one ending in "/" matches folders only.
    """
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        candidates = prefixes[:-1] if pattern.endswith("/") else prefixes
        pattern = pattern.strip("/")
        if any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates):
            return True
    return False


def repo_python_files(root: Path) -> list[Path]:
    """The repo's .py files, skipping hidden folders, virtualenvs and ignored patterns."""
    patterns = _ignore_patterns(root)
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts[:-1]):
            continue
        if any(part.endswith("venv") for part in parts[:-1]):
            continue
        if _ignored(parts, patterns):
            continue
        files.append(path)
    return files


def _module_name(relative: Path) -> str:
    """``a/b.py`` is module ``a.b``; a package's ``a/__init__.py`` is ``a`` itself."""
    parts = relative.with_suffix("").parts
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def load_definitions(root: Path) -> list[tuple[RepoObject, str]]:
    """Import every repo file; return each declared object with the file it came from.

    An object imported into several files is listed once, under the first file.
    """
    root = root.resolve()
    files = repo_python_files(root)
    names = [_module_name(p.relative_to(root)) for p in files]
    for name in list(sys.modules):
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if name in names or module_file.startswith(str(root) + "/"):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    # Cached bytecode is trusted while a file keeps its size and whole-second mtime, so a
    # quick same-size edit would load the old definitions: compile repo files afresh.
    dont_write_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    found: list[tuple[RepoObject, str]] = []
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
        sys.dont_write_bytecode = dont_write_bytecode
    return found
