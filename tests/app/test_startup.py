"""Startup fails fast, with a clear message, when it cannot serve; waits a bounded time for
a registry or online store that is only late."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from app import create_app
from registry.backend import RegistryError, RegistryUnavailable
from registry.config import ConfigError
from stores.base import StoreUnavailable
from tests.app.conftest import DEFINITIONS, build_repo
from tests.support import PostgresServer, free_port, run_cli, write_repo

SQLITE = {"type": "sqlite", "path": "data/online.db"}
PASSWORD = PostgresServer.PASSWORD


def dead_pg_url() -> str:
    return f"postgresql://ladle:{PASSWORD}@127.0.0.1:{free_port()}/nowhere"


def sql_repo(root: Path, url: str, online_store: dict[str, object] = SQLITE) -> Path:
    return write_repo(
        root,
        DEFINITIONS,
        online_store=online_store,
        extra_config={"registry": {"registry_type": "sql", "path": url}},
    )


def use_dead_redis(root: Path) -> None:
    path = root / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["online_store"] = {"type": "redis", "connection_string": f"127.0.0.1:{free_port()}"}
    path.write_text(yaml.safe_dump(config))


async def start(root: Path) -> None:
    app = create_app(root)
    async with app.router.lifespan_context(app):
        pass


async def test_unreachable_sql_registry_fails_after_the_retry_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LADLE_STARTUP_RETRY_SECONDS", "1")
    root = sql_repo(tmp_path, dead_pg_url())
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as info:
        await start(root)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 8.0
    message = str(info.value)
    assert "postgresql://ladle:***@127.0.0.1:" in message
    assert "cannot be reached" in message and "gave up after" in message
    assert PASSWORD not in message


async def test_sql_registry_without_apply_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.setenv("LADLE_STARTUP_RETRY_SECONDS", "30")  # not worth waiting for
    root = sql_repo(tmp_path, pg_url)
    started = time.monotonic()
    with pytest.raises(RegistryError, match="run `ladle apply`") as info:
        await start(root)
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(info.value)


async def test_unreachable_redis_fails_after_the_retry_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = await build_repo(tmp_path / "repo", SQLITE)
    monkeypatch.setenv("LADLE_STARTUP_RETRY_SECONDS", "0.5")
    use_dead_redis(root)
    with pytest.raises(
        StoreUnavailable, match=r"cannot reach Redis .* \(gave up after \d+ attempts"
    ):
        await start(root)


async def test_registry_that_comes_up_late_is_waited_for(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    pg_url: str,
) -> None:
    root = await build_repo(tmp_path / "repo", SQLITE, {"registry_type": "sql", "path": pg_url})
    monkeypatch.setenv("LADLE_STARTUP_RETRY_SECONDS", "20")
    postgres_server.stop()
    starter = threading.Timer(1.0, postgres_server.start)
    starter.start()
    try:
        app = create_app(root)
        started = time.monotonic()
        async with app.router.lifespan_context(app):
            assert time.monotonic() - started >= 0.9
            assert app.state.ladle.snapshot.version == 2
    finally:
        starter.join()


def test_bad_retry_setting_is_a_config_error(tmp_path: Path) -> None:
    write_repo(tmp_path, DEFINITIONS, online_store=SQLITE)
    os.environ["LADLE_STARTUP_RETRY_SECONDS"] = "soon"
    try:
        with pytest.raises(ConfigError, match="LADLE_STARTUP_RETRY_SECONDS: 'soon'"):
            asyncio.run(start(tmp_path))
    finally:
        del os.environ["LADLE_STARTUP_RETRY_SECONDS"]


def serve_fails(root: Path) -> str:
    """Run `ladle serve`, which must exit 1 before serving; returns its stderr."""
    os.environ["LADLE_STARTUP_RETRY_SECONDS"] = "0.5"
    try:
        result = run_cli("serve", "--port", str(free_port()), cwd=root, check=False, timeout=60)
    finally:
        del os.environ["LADLE_STARTUP_RETRY_SECONDS"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert "serving" not in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    return result.stderr


def test_ladle_serve_exits_with_a_clear_message(tmp_path: Path, pg_url: str) -> None:
    stderr = serve_fails(sql_repo(tmp_path / "down", dead_pg_url()))
    assert "ladle serve: error: registry postgresql://ladle:***@127.0.0.1:" in stderr
    assert "cannot be reached" in stderr and "gave up after" in stderr

    stderr = serve_fails(sql_repo(tmp_path / "empty", pg_url))
    assert "table ladle_registry does not exist; run `ladle apply`" in stderr

    root = asyncio.run(
        build_repo(tmp_path / "applied", SQLITE, {"registry_type": "sql", "path": pg_url})
    )
    use_dead_redis(root)
    stderr = serve_fails(root)
    assert "ladle serve: error: cannot reach Redis at 127.0.0.1:" in stderr
