"""SqlRegistry against a real PostgreSQL: versions, the cheap check, locks, clear errors."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from registry.backend import RegistryError, RegistryUnavailable, ViewLocked
from registry.config import ConfigError, load_repo_config
from registry.dsn import redact, scrub
from registry.model import EntitySpec, MaterializationSpec, RegistrySnapshot
from registry.refresh import RegistryRefresher
from registry.sql_registry import SqlRegistry
from tests.support import PostgresServer, free_port, write_repo


def entities(*names: str) -> RegistrySnapshot:
    return RegistrySnapshot(
        project="demo",
        version=0,
        updated_at="",
        entities={n: EntitySpec(n, f"{n}_id", "Int64") for n in names},
    )


def replace_with(new: RegistrySnapshot):  # type: ignore[no-untyped-def]
    return lambda current: new


def mark(tag: str):  # type: ignore[no-untyped-def]
    """A change that adds ``tag`` to the materializations, so a lost update shows."""

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        base = current or entities()
        windows = {**base.materializations, tag: MaterializationSpec(0, 1)}
        return msgspec.structs.replace(base, materializations=windows)

    return change


async def sql(url: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_first_update_creates_the_table_and_each_write_adds_one(pg_url: str) -> None:
    registry = SqlRegistry(pg_url, "demo")
    try:
        seen: list[RegistrySnapshot | None] = []

        def first(current: RegistrySnapshot | None) -> RegistrySnapshot:
            seen.append(current)
            return entities("driver")

        written = await registry.update(first)
        assert seen == [None]
        assert written.version == 1 and written.updated_at
        assert await registry.load() == written

        def second(current: RegistrySnapshot | None) -> RegistrySnapshot:
            seen.append(current)
            return entities("driver", "rider")

        again = await registry.update(second)
        assert seen[1] == written  # the second write saw the first
        assert again.version == 2
        assert list((await registry.load()).entities) == ["driver", "rider"]
        assert await sql(pg_url, "SELECT version FROM ladle_registry WHERE project = 'demo'") == 2
    finally:
        await registry.close()


async def test_token_changes_only_when_written(pg_url: str) -> None:
    registry = SqlRegistry(pg_url, "demo")
    try:
        await registry.update(replace_with(entities("driver")))
        token = await registry.token()
        assert await registry.token() == token
        await registry.update(replace_with(entities("driver")))  # same contents
        assert await registry.token() != token
    finally:
        await registry.close()


async def test_projects_share_a_database_without_seeing_each_other(pg_url: str) -> None:
    demo, other = SqlRegistry(pg_url, "demo"), SqlRegistry(pg_url, "other")
    try:
        await demo.update(replace_with(entities("driver")))
        with pytest.raises(RegistryError, match="no registry has been applied yet"):
            await other.load()
        await other.update(replace_with(msgspec.structs.replace(entities("x"), project="other")))
        await demo.update(replace_with(entities("driver")))
        assert ((await demo.load()).version, (await other.load()).version) == (2, 1)
        with pytest.raises(RegistryError, match="refusing to store project 'demo'"):
            await other.update(replace_with(entities("y")))
        assert (await other.load()).version == 1
    finally:
        await demo.close()
        await other.close()


async def test_missing_table_and_missing_row_point_at_ladle_apply(pg_url: str) -> None:
    registry = SqlRegistry(pg_url, "demo")
    try:
        for call in (registry.token, registry.load):
            with pytest.raises(RegistryError) as info:
                await call()
            assert not isinstance(info.value, RegistryUnavailable)
            assert "table ladle_registry does not exist; run `ladle apply`" in str(info.value)
        await SqlRegistry(pg_url, "other").update(
            replace_with(msgspec.structs.replace(entities(), project="other"))
        )
        with pytest.raises(RegistryError, match="no registry has been applied yet; run `ladle"):
            await registry.token()
    finally:
        await registry.close()


async def test_failing_change_rolls_back(pg_url: str) -> None:
    registry = SqlRegistry(pg_url, "demo")
    try:
        await registry.update(replace_with(entities("driver")))

        def refuse(current: RegistrySnapshot | None) -> RegistrySnapshot:
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await registry.update(refuse)
        assert (await registry.load()).version == 1
        assert (await registry.update(replace_with(entities()))).version == 2
    finally:
        await registry.close()


async def test_corrupt_row_is_an_error_that_apply_may_replace(pg_url: str) -> None:
    registry = SqlRegistry(pg_url, "demo")
    try:
        await registry.update(replace_with(entities("driver")))
        await sql(pg_url, "UPDATE ladle_registry SET snapshot = '\\x7b'::bytea")
        with pytest.raises(RegistryError, match="is corrupt"):
            await registry.load()
        with pytest.raises(RegistryError, match="is corrupt"):
            await registry.update(mark("x"))
        seen: list[RegistrySnapshot | None] = []

        def replace(current: RegistrySnapshot | None) -> RegistrySnapshot:
            seen.append(current)
            return entities("rider")

        written = await registry.update(replace, replace_corrupt=True)
        assert seen == [None]
        assert written.version == 2  # versions keep growing past the corrupt row
        assert await registry.load() == written
    finally:
        await registry.close()


def _update_many(url: str, writer: int, count: int, go: Any, versions: Any) -> None:
    async def run() -> list[int]:
        registry = SqlRegistry(url, "demo")
        try:
            await registry.token()  # connected (the table exists), then all start at once
            go.wait(60)
            return [(await registry.update(mark(f"w{writer}-{i}"))).version for i in range(count)]
        finally:
            await registry.close()

    versions.put((writer, asyncio.run(run())))


def test_concurrent_updates_from_processes_lose_nothing(pg_url: str) -> None:
    async def first() -> None:
        registry = SqlRegistry(pg_url, "demo")
        await registry.update(replace_with(entities()))
        await registry.close()

    asyncio.run(first())
    context = multiprocessing.get_context("spawn")
    queue, go = context.Queue(), context.Event()
    workers = [
        context.Process(target=_update_many, args=(pg_url, writer, 25, go, queue))
        for writer in range(4)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    go.set()
    results = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    # Each write got its own version, one apart, and each writer saw its own grow.
    assert sorted(v for vs in results.values() for v in vs) == list(range(2, 102))
    assert all(vs == sorted(vs) for vs in results.values())

    async def final() -> RegistrySnapshot:
        registry = SqlRegistry(pg_url, "demo")
        try:
            return await registry.load()
        finally:
            await registry.close()

    snapshot = asyncio.run(final())
    assert snapshot.version == 101
    assert sorted(snapshot.materializations) == sorted(
        f"w{writer}-{i}" for writer in range(4) for i in range(25)
    )


async def test_view_lock_excludes_other_holders_until_released(pg_url: str) -> None:
    first, second = SqlRegistry(pg_url, "demo"), SqlRegistry(pg_url, "demo")
    async with first.view_lock("stats"):
        with pytest.raises(ViewLocked, match="'stats' is already being materialized"):
            async with second.view_lock("stats"):
                pass
        async with second.view_lock("other_view"):
            pass
        async with second.view_lock("stats", force=True):
            pass
    async with second.view_lock("stats"):
        pass


async def test_unreachable_server_is_unavailable_and_says_no_password() -> None:
    url = f"postgresql://ladle:{PostgresServer.PASSWORD}@127.0.0.1:{free_port()}/db"
    registry = SqlRegistry(url, "demo", timeout=2)
    for call in (registry.token, registry.load):
        with pytest.raises(RegistryUnavailable) as info:
            await call()
        message = str(info.value)
        assert "cannot be reached" in message
        assert "postgresql://ladle:***@127.0.0.1" in message
        assert PostgresServer.PASSWORD not in message
    assert PostgresServer.PASSWORD not in registry.describe()
    await registry.close()


async def test_wrong_password_is_an_error_not_worth_retrying(
    postgres_server: PostgresServer, pg_url: str
) -> None:
    wrong = "not-the-Right-one"
    registry = SqlRegistry(postgres_server.url(pg_url.rsplit("/", 1)[1], wrong), "demo")
    with pytest.raises(RegistryError) as info:
        await registry.token()
    assert not isinstance(info.value, RegistryUnavailable)
    assert "password authentication failed" in str(info.value)
    assert wrong not in str(info.value)
    await registry.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:Secr3tPw@127.0.0.1:notaport/db",
        "postgresql://u:Secr3tPw@127.0.0.1:5/db?sslmode=bogus",
    ],
)
async def test_unusable_url_is_an_error_not_worth_retrying(url: str) -> None:
    registry = SqlRegistry(url, "demo", timeout=2)
    with pytest.raises(RegistryError) as info:
        await registry.load()
    assert not isinstance(info.value, RegistryUnavailable)
    assert "has an unusable URL" in str(info.value)
    assert "Secr3tPw" not in str(info.value) and "u:***@" in str(info.value)
    with pytest.raises(RegistryError, match="unusable URL"):
        async with registry.view_lock("stats"):
            pass


async def test_server_restart_drops_the_connection_and_the_next_call_reconnects(
    postgres_server: PostgresServer, pg_url: str
) -> None:
    registry = SqlRegistry(pg_url, "demo", timeout=2)
    try:
        await registry.update(replace_with(entities("driver")))
        token = await registry.token()
        postgres_server.stop()
        with pytest.raises(RegistryUnavailable) as info:
            await registry.token()
        assert PostgresServer.PASSWORD not in str(info.value)
        postgres_server.start()
        assert await registry.token() == token
    finally:
        await registry.close()


class CountingSqlRegistry(SqlRegistry):
    """The real registry, counting the snapshot loads the refresher asks for."""

    loads = 0

    async def load(self) -> RegistrySnapshot:
        self.loads += 1
        return await super().load()


async def test_refresh_loads_only_when_the_version_changed(pg_url: str) -> None:
    writer = SqlRegistry(pg_url, "demo")
    reader = CountingSqlRegistry(pg_url, "demo")
    installed: list[int] = []
    refresher = RegistryRefresher(reader, 60, lambda s: installed.append(s.version))
    try:
        await writer.update(replace_with(entities("driver")))
        await refresher.load_initial()
        assert (installed, reader.loads) == ([1], 1)
        for _ in range(5):
            assert await refresher.check() is False
        assert reader.loads == 1  # unchanged: the version check alone, no load
        await writer.update(replace_with(entities("driver", "rider")))
        assert await refresher.check() is True
        assert (installed, reader.loads) == ([1, 2], 2)
        assert await refresher.check() is False
        assert reader.loads == 2
    finally:
        await writer.close()
        await reader.close()


async def test_refresh_keeps_the_last_good_version_while_the_server_is_down(
    postgres_server: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ladle")
    writer = SqlRegistry(pg_url, "demo")
    reader = SqlRegistry(pg_url, "demo", timeout=2)
    installed: list[int] = []
    refresher = RegistryRefresher(reader, 60, lambda s: installed.append(s.version))
    try:
        await writer.update(replace_with(entities("driver")))
        await refresher.load_initial()
        postgres_server.stop()
        assert await refresher.check() is False
        assert refresher.snapshot is not None and refresher.snapshot.version == 1
        assert refresher.problem is not None and "cannot be reached" in refresher.problem
        assert PostgresServer.PASSWORD not in refresher.problem
        postgres_server.start()
        await writer.update(replace_with(entities("rider")))
        assert await refresher.check() is True
        assert refresher.problem is None
        assert installed == [1, 2]
        logged = [r.getMessage() for r in caplog.records]
        assert any("registry refresh failed, serving version 1" in m for m in logged)
        assert any("is readable again" in m for m in logged)
        assert not any(PostgresServer.PASSWORD in m for m in logged)
    finally:
        await writer.close()
        await reader.close()


def test_redact_and_scrub_hide_every_form_of_the_password() -> None:
    url = "postgresql://user:p%40ss@db.example:5432/feast?sslmode=require&password=other"
    shown = redact(url)
    assert shown == "postgresql://user:***@db.example:5432/feast?sslmode=require&password=***"
    text = f"failed for {url}: p@ss and p%40ss and other"
    assert scrub(text, url) == f"failed for {shown}: *** and *** and ***"
    assert redact("postgresql://user@host/db") == "postgresql://user@host/db"


def test_passwords_with_url_delimiters_are_masked_whole_or_refused(tmp_path: Path) -> None:
    for password in ("Xy7/Qz9+abc", "a?b#c", "p@ss/word"):
        url = f"postgresql://ladle:{password}@127.0.0.1:5432/features"
        assert redact(url) == "postgresql://ladle:***@127.0.0.1:5432/features"
        assert password not in scrub(f"cannot use {url} ({password})", url)
        write_repo(tmp_path, "", extra_config={"registry": {"registry_type": "sql", "path": url}})
        with pytest.raises(ConfigError, match="must be percent-encoded") as info:
            load_repo_config(tmp_path)
        assert password not in str(info.value)
    encoded = "postgresql://ladle:Xy7%2FQz9@127.0.0.1:5432/features"
    write_repo(tmp_path, "", extra_config={"registry": {"registry_type": "sql", "path": encoded}})
    assert load_repo_config(tmp_path).config.registry_config.registry_type == "sql"


def test_config_accepts_postgres_urls_and_names_bad_ones_without_secrets(tmp_path: Path) -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        write_repo(
            tmp_path,
            "",
            extra_config={"registry": {"registry_type": "sql", "path": f"{scheme}://u:pw@h/db"}},
        )
        assert load_repo_config(tmp_path).config.registry_config.registry_type == "sql"
    write_repo(
        tmp_path,
        "",
        extra_config={"registry": {"registry_type": "sql", "path": "mysql://u:Secret99@h/db"}},
    )
    with pytest.raises(ConfigError) as info:
        load_repo_config(tmp_path)
    assert "registry.path: 'mysql://' is not a PostgreSQL URL" in str(info.value)
    assert "Secret99" not in str(info.value)
