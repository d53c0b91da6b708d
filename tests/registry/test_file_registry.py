"""FileRegistry: atomic replacement, version bumps under a lock, clear read errors."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from registry.file_registry import FileRegistry, RegistryError
from registry.model import (
    EntitySpec,
    FeatureViewSpec,
    FieldSpec,
    FileSourceSpec,
    MaterializationSpec,
    RegistrySnapshot,
    snapshot_encoder,
)


def snapshot(project: str = "demo", views: int = 1) -> RegistrySnapshot:
    source = FileSourceSpec(name="src", path="data/src.parquet", timestamp_field="ts")
    return RegistrySnapshot(
        project=project,
        version=0,
        updated_at="",
        entities={"driver": EntitySpec("driver", "driver_id", "Int64")},
        feature_views={
            f"view_{i}": FeatureViewSpec(
                name=f"view_{i}",
                entities=["driver"],
                join_keys=[FieldSpec("driver_id", "Int64")],
                features=[FieldSpec(f"feature_{j}", "Float64") for j in range(20)],
                source=source,
            )
            for i in range(views)
        },
    )


Change = Callable[[RegistrySnapshot | None], RegistrySnapshot]


def replace_with(new: RegistrySnapshot) -> Change:
    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        return new

    return change


def mark(tag: str) -> Change:
    """A change that records ``tag`` in the materializations (so lost updates show)."""

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        base = current or snapshot()
        windows = {**base.materializations, tag: MaterializationSpec(0, 1)}
        return msgspec.structs.replace(base, materializations=windows)

    return change


def leftovers(folder: Path) -> list[str]:
    """Files other than the registry and its lock: temporary files that were not cleaned up."""
    return sorted(
        p.name for p in folder.iterdir() if p.name not in ("registry.db", "registry.db.lock")
    )


def test_first_update_creates_the_file_and_folders(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "registry.db"
    registry = FileRegistry(path)
    seen: list[RegistrySnapshot | None] = []

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        seen.append(current)
        return snapshot()

    written = registry.update_sync(change)
    assert seen == [None]
    assert written.version == 1
    assert written.updated_at
    assert registry.read() == written
    assert registry.read_or_none() == written
    assert registry.describe() == str(path)
    assert leftovers(path.parent) == []


def test_update_bumps_the_stored_version_whatever_change_returns(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "registry.db")
    registry.update_sync(replace_with(snapshot()))
    seen: list[int] = []

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        assert current is not None
        seen.append(current.version)
        return msgspec.structs.replace(snapshot(project="other"), version=99)

    second = registry.update_sync(change)
    third = registry.update_sync(replace_with(msgspec.structs.replace(snapshot(), version=-5)))
    assert seen == [1]
    assert (second.version, second.project) == (2, "other")
    assert third.version == 3
    assert registry.read() == third


async def test_token_changes_and_read_returns_the_new_version(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "registry.db")
    registry.update_sync(replace_with(snapshot()))
    tokens = [await registry.token()]
    for expected in range(2, 6):
        # Same size on purpose: only the replacement itself can change the token.
        registry.update_sync(replace_with(snapshot()))
        token = await registry.token()
        assert token not in tokens
        tokens.append(token)
        assert (await registry.load()).version == expected
        assert registry.read().version == expected
    assert await registry.token() == tokens[-1]  # stable while nothing is written


def test_failing_change_leaves_the_registry_untouched(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = FileRegistry(path)
    registry.update_sync(replace_with(snapshot()))
    before = path.read_bytes()

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        registry.update_sync(change)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert registry.update_sync(replace_with(snapshot())).version == 2


def test_write_failure_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = FileRegistry(path)
    registry.update_sync(replace_with(snapshot()))
    before = path.read_bytes()
    # A folder where the file should be: os.replace fails after the data was written.
    path.unlink()
    path.mkdir()
    (path / "keep").write_text("x")
    try:
        with pytest.raises(OSError):
            registry._write_atomically(before)
        assert leftovers(tmp_path) == []
    finally:
        (path / "keep").unlink()
        path.rmdir()


def _update_many(path: str, writer: int, count: int) -> None:
    registry = FileRegistry(Path(path))
    for i in range(count):
        registry.update_sync(mark(f"w{writer}-{i}"))


def test_concurrent_updates_from_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_update_many, args=(str(path), writer, 10)) for writer in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    final = FileRegistry(path).read()
    assert final.version == 40
    assert sorted(final.materializations) == sorted(
        f"w{writer}-{i}" for writer in range(4) for i in range(10)
    )
    assert leftovers(tmp_path) == []


def _keep_writing(path: str, count: int) -> None:
    registry = FileRegistry(Path(path))
    for i in range(count):
        # Alternate sizes so that readers would see torn files if writes were in place.
        registry.update_sync(replace_with(snapshot(views=1 + (i % 2) * 40)))


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = FileRegistry(path)
    registry.update_sync(replace_with(snapshot()))
    writer = multiprocessing.get_context("spawn").Process(
        target=_keep_writing, args=(str(path), 60)
    )
    writer.start()
    reads = 0
    last_version = 1
    deadline = time.monotonic() + 60
    while writer.is_alive() and time.monotonic() < deadline:
        current = registry.read()  # raises RegistryError on a torn or empty file
        assert current.version >= last_version
        assert len(current.feature_views) in (1, 41)
        last_version = current.version
        reads += 1
    writer.join(timeout=10)
    assert writer.exitcode == 0
    assert registry.read().version == 61
    assert reads > 0


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b'{"project": "demo", "version": 3, "updated_at": "x", "feature_views": {',
        b'{"project": "demo"}',
        b'{"project": 5, "version": "three", "updated_at": ""}',
        b"\xff\xfe\x00garbage",
        b"[]",
    ],
    ids=["empty", "text", "truncated", "missing fields", "wrong types", "binary", "list"],
)
def test_corrupt_file_is_a_registry_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(content)
    with pytest.raises(RegistryError) as info:
        FileRegistry(path).read()
    message = str(info.value)
    assert message.startswith(f"registry {path} is corrupt: ")


def test_truncated_real_registry_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    FileRegistry(path).update_sync(replace_with(snapshot(views=3)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError, match="is corrupt"):
        FileRegistry(path).read()


async def test_missing_file_points_at_ladle_apply(tmp_path: Path) -> None:
    path = tmp_path / "data" / "registry.db"
    registry = FileRegistry(path)
    with pytest.raises(RegistryError) as info:
        registry.read()
    assert str(info.value) == (
        f"registry {path} does not exist; run `ladle apply` in the feature repo"
    )
    with pytest.raises(RegistryError, match="ladle apply"):
        await registry.load()
    with pytest.raises(RegistryError) as token_info:
        await registry.token()
    assert str(path) in str(token_info.value)
    assert registry.read_or_none() is None


def test_unreadable_path_is_a_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.mkdir()  # a folder where the file should be
    with pytest.raises(RegistryError) as info:
        FileRegistry(path).read()
    assert str(path) in str(info.value)


def test_file_holds_the_encoded_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    written = FileRegistry(path).update_sync(replace_with(snapshot()))
    assert path.read_bytes() == snapshot_encoder.encode(written)


def test_new_file_is_readable_as_the_umask_allows(tmp_path: Path) -> None:
    # Servers often run as another user than `ladle apply`: not mkstemp's private 0600.
    path = tmp_path / "registry.db"
    previous = os.umask(0o022)
    try:
        FileRegistry(path).update_sync(replace_with(snapshot()))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.umask(0o077)
        FileRegistry(tmp_path / "private.db").update_sync(replace_with(snapshot()))
        assert stat.S_IMODE(os.stat(tmp_path / "private.db").st_mode) == 0o600
    finally:
        os.umask(previous)


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = FileRegistry(path)
    registry.update_sync(replace_with(snapshot()))
    os.chmod(path, 0o640)
    registry.update_sync(replace_with(snapshot()))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


async def test_async_update_waits_for_the_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "registry.db")
    registry.update_sync(replace_with(snapshot()))
    ticks = 0
    with registry._locked():  # held as another process would hold it
        task = asyncio.create_task(registry.update(mark("late")))
        for _ in range(5):
            await asyncio.sleep(0.02)
            ticks += 1  # the loop keeps running while the update waits
        assert not task.done()
    written = await task
    assert ticks == 5
    assert written.version == 2
    assert "late" in registry.read().materializations
