"""Open the registry backend a repo's config names: a file, or a PostgreSQL table."""

from __future__ import annotations

from registry.backend import RegistryBackend
from registry.config import RepoSettings
from registry.file_registry import FileRegistry
from registry.sql_registry import SqlRegistry


def open_registry(settings: RepoSettings) -> RegistryBackend:
    """Nothing is connected yet: the first call does that (and reports failures)."""
    config = settings.config.registry_config
    if config.registry_type == "sql":
        return SqlRegistry(config.path, settings.config.project)
    return FileRegistry(settings.registry_path)
