"""Materialization: the latest offline row per entity in a window reaches the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores import codec, timestamps
from stores.base import ReadBatch
from stores.factory import create_online_store
from stores.keys import make_key_encoder
from stores.materialize import MaterializeError, materialize
from stores.offline import FileOfflineStore
from tests.support import write_parquet, write_repo

DEFS = """
from datetime import timedelta
from registry import Entity, FeatureView, Field, FileSource, Int64, String, ValueType
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
events = FeatureView(
    name="events", entities=[user], ttl=timedelta(days=3650),
    schema=[Field(name="clicks", dtype=Int64), Field(name="label", dtype=String)],
    source=FileSource(path="data/events/*.parquet", timestamp_field="ts",
                      created_timestamp_column="created"))
"""

# Two files (a glob): u1 has rows at 10:00 and 12:00 (two at 12:00: the later `created`
# wins); u2 has one row at 11:00; u3 only at 14:00.
PART_1 = """
SELECT * FROM (VALUES
  ('u1', TIMESTAMP '2026-01-01 10:00:00', TIMESTAMP '2026-01-01 10:00:00', 1, 'a'),
  ('u1', TIMESTAMP '2026-01-01 12:00:00', TIMESTAMP '2026-01-01 12:00:01', 2, 'first'),
  ('u2', TIMESTAMP '2026-01-01 11:00:00', TIMESTAMP '2026-01-01 11:00:00', 5, NULL)
) AS t(user_id, ts, created, clicks, label)"""
PART_2 = """
SELECT * FROM (VALUES
  ('u1', TIMESTAMP '2026-01-01 12:00:00', TIMESTAMP '2026-01-01 12:00:05', 3, 'second'),
  ('u3', TIMESTAMP '2026-01-01 14:00:00', TIMESTAMP '2026-01-01 14:00:00', 9, 'late')
) AS t(user_id, ts, created, clicks, label)"""


def ts(text: str) -> int:
    return timestamps.parse(text)


@pytest.fixture
def repo(tmp_path: Path, online_store_config: dict[str, object]) -> Path:
    write_repo(tmp_path, DEFS, online_store=online_store_config)
    write_parquet(tmp_path / "data/events/part1.parquet", PART_1)
    write_parquet(tmp_path / "data/events/part2.parquet", PART_2)
    asyncio.run(apply_repo(load_repo_config(tmp_path)))
    return tmp_path


async def stored(root: Path) -> dict[str, tuple[int, dict[str, object]] | None]:
    settings = load_repo_config(root)
    store = create_online_store(settings)
    await store.start()
    encode = make_key_encoder(settings.config.project, [("user_id", "String")])
    users = ["u1", "u2", "u3"]
    try:
        result = await store.read([ReadBatch([encode([u]) for u in users], ["events"])])
    finally:
        await store.close()
    return {
        u: codec.decode_record(r[0]) if r[0] else None
        for u, r in zip(users, result[0], strict=True)
    }


async def run(root: Path, end: str, start: str | None = None) -> list[object]:
    settings = load_repo_config(root)
    store = create_online_store(settings)
    await store.start()
    try:
        return list(
            await materialize(
                FileRegistry(settings.registry_path),
                FileOfflineStore(root),
                store,
                ["events"],
                ts(end),
                ts(start) if start else None,
            )
        )
    finally:
        await store.close()


async def test_latest_row_per_entity_in_window(repo: Path) -> None:
    await run(repo, "2026-01-01T13:00:00Z", "2026-01-01T00:00:00Z")
    rows = await stored(repo)
    assert rows["u1"] == (ts("2026-01-01T12:00:00Z"), {"clicks": 3, "label": "second"})
    assert rows["u2"] == (ts("2026-01-01T11:00:00Z"), {"clicks": 5, "label": None})
    assert rows["u3"] is None  # after the window's end


async def test_incremental_windows_continue_where_they_ended(repo: Path) -> None:
    await run(repo, "2026-01-01T10:30:00Z", "2026-01-01T00:00:00Z")
    assert (await stored(repo))["u1"] == (ts("2026-01-01T10:00:00Z"), {"clicks": 1, "label": "a"})
    snapshot = FileRegistry(load_repo_config(repo).registry_path).read()
    assert snapshot.materializations["events"].end_us == ts("2026-01-01T10:30:00Z")

    await run(repo, "2026-01-01T15:00:00Z")  # incremental: from 10:30 on
    rows = await stored(repo)
    assert rows["u1"] is not None and rows["u1"][1]["clicks"] == 3
    assert rows["u3"] == (ts("2026-01-01T14:00:00Z"), {"clicks": 9, "label": "late"})
    snapshot = FileRegistry(load_repo_config(repo).registry_path).read()
    window = snapshot.materializations["events"]
    assert (window.start_us, window.end_us) == (
        ts("2026-01-01T10:30:00Z"),
        ts("2026-01-01T15:00:00Z"),
    )


async def test_older_rows_never_overwrite_newer_values(repo: Path) -> None:
    await run(repo, "2026-01-01T13:00:00Z", "2026-01-01T11:30:00Z")
    await run(repo, "2026-01-01T10:30:00Z", "2026-01-01T00:00:00Z")  # older window
    assert (await stored(repo))["u1"] == (
        ts("2026-01-01T12:00:00Z"),
        {"clicks": 3, "label": "second"},
    )


async def test_bad_requests(repo: Path) -> None:
    with pytest.raises(MaterializeError, match="after end"):
        await run(repo, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    settings = load_repo_config(repo)
    store = create_online_store(settings)
    await store.start()
    try:
        with pytest.raises(MaterializeError, match="unknown feature view"):
            await materialize(
                FileRegistry(settings.registry_path),
                FileOfflineStore(repo),
                store,
                ["nope"],
                ts("2026-01-02T00:00:00Z"),
                0,
            )
    finally:
        await store.close()


async def test_offline_values_that_do_not_fit_are_a_clear_error(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        DEFS.replace(
            'Field(name="clicks", dtype=Int64)', 'Field(name="clicks", dtype=Int32)'
        ).replace("Int64, String", "Int32, String"),
    )
    write_parquet(
        tmp_path / "data/events/part1.parquet",
        PART_1.replace(
            "'u2', TIMESTAMP '2026-01-01 11:00:00', TIMESTAMP '2026-01-01 11:00:00', 5",
            "'u2', TIMESTAMP '2026-01-01 11:00:00', TIMESTAMP '2026-01-01 11:00:00', 5000000000",
        ),
    )
    await apply_repo(load_repo_config(tmp_path))
    with pytest.raises(MaterializeError, match=r"'u2'.*out of range for Int32"):
        await run(tmp_path, "2026-01-01T13:00:00Z", "2026-01-01T00:00:00Z")
