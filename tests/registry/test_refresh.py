"""RegistryRefresher over a real FileRegistry: installs new versions, survives bad files."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest

from registry.file_registry import FileRegistry, RegistryError
from registry.model import EntitySpec, RegistrySnapshot
from registry.refresh import RegistryRefresher


def write(registry: FileRegistry, entity: str = "driver") -> RegistrySnapshot:
    """One apply-like update; the entity name lets tests tell contents apart."""

    def change(current: RegistrySnapshot | None) -> RegistrySnapshot:
        base = current or RegistrySnapshot(project="demo", version=0, updated_at="")
        return msgspec.structs.replace(
            base, entities={entity: EntitySpec(entity, f"{entity}_id", "Int64")}
        )

    return registry.update_sync(change)


class Harness:
    def __init__(self, path: Path, interval: float = 60.0) -> None:
        self.registry = FileRegistry(path)
        self.installed: list[RegistrySnapshot] = []
        self.refresher = RegistryRefresher(self.registry, interval, self.installed.append)

    @property
    def versions(self) -> list[int]:
        return [s.version for s in self.installed]


async def started(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path / "registry.db")
    write(harness.registry)
    snapshot = await harness.refresher.load_initial()
    assert snapshot.version == 1
    assert harness.versions == [1]
    return harness


async def test_load_initial_fails_fast_without_a_registry(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "registry.db")
    with pytest.raises(RegistryError):
        await harness.refresher.load_initial()
    assert harness.refresher.snapshot is None
    assert harness.installed == []


async def test_load_initial_fails_fast_on_a_corrupt_registry(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_text("{")
    harness = Harness(tmp_path / "registry.db")
    with pytest.raises(RegistryError, match="corrupt"):
        await harness.refresher.load_initial()


async def test_check_without_a_change_installs_nothing(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    assert await harness.refresher.check() is False
    assert await harness.refresher.check() is False
    assert harness.versions == [1]
    assert harness.refresher.problem is None


async def test_check_installs_each_new_version(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    write(harness.registry, "rider")
    assert await harness.refresher.check() is True
    assert harness.versions == [1, 2]
    snapshot = harness.refresher.snapshot
    assert snapshot is not None
    assert list(snapshot.entities) == ["rider"]
    # Several writes between checks: only the latest is installed.
    write(harness.registry, "a")
    write(harness.registry, "b")
    assert await harness.refresher.check() is True
    assert harness.versions == [1, 2, 4]
    assert await harness.refresher.check() is False


async def test_corrupt_file_keeps_the_last_good_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await started(tmp_path)
    write(harness.registry)
    assert await harness.refresher.check() is True
    good = harness.refresher.snapshot
    assert good is not None and good.version == 2

    harness.registry.path.write_text('{"project": "demo", "version": 3, "entit')
    with caplog.at_level(logging.INFO, logger="ladle.registry"):
        assert await harness.refresher.check() is False
        assert await harness.refresher.check() is False
    assert harness.refresher.snapshot is good
    assert harness.versions == [1, 2]
    problem = harness.refresher.problem
    assert problem is not None
    assert problem.startswith("RegistryError: ")
    assert "is corrupt" in problem
    # Logged once per distinct problem, not on every tick.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "serving version 2" in warnings[0].getMessage()

    # Fixed by the next apply: the new version is installed and the problem cleared.
    caplog.clear()
    harness.registry.path.unlink()
    with caplog.at_level(logging.INFO, logger="ladle.registry"):
        fixed = write(harness.registry, "rider")
        assert await harness.refresher.check() is True
    assert harness.refresher.problem is None
    assert harness.refresher.snapshot == fixed
    assert harness.versions == [1, 2, fixed.version]
    assert any("readable again" in r.getMessage() for r in caplog.records)


async def test_deleted_file_keeps_the_last_good_snapshot(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    good = harness.refresher.snapshot
    saved = harness.registry.path.read_bytes()
    harness.registry.path.unlink()

    assert await harness.refresher.check() is False
    assert harness.refresher.snapshot is good
    problem = harness.refresher.problem
    assert problem is not None
    assert str(harness.registry.path) in problem

    # The same file put back: nothing new to install, but healthy again.
    harness.registry.path.write_bytes(saved)
    assert await harness.refresher.check() is False
    assert harness.refresher.problem is None
    assert harness.refresher.snapshot is good
    assert harness.versions == [1]

    write(harness.registry, "rider")
    assert await harness.refresher.check() is True
    assert harness.versions == [1, 2]


async def test_recreated_registry_with_a_lower_version_is_installed(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    write(harness.registry)
    write(harness.registry)
    assert await harness.refresher.check() is True
    assert harness.versions == [1, 3]
    harness.registry.path.unlink()
    assert await harness.refresher.check() is False
    assert harness.refresher.problem is not None
    recreated = write(harness.registry, "rider")  # a fresh `ladle apply` starts at 1
    assert recreated.version == 1
    assert await harness.refresher.check() is True
    assert harness.refresher.snapshot == recreated
    assert harness.refresher.problem is None


async def test_corrupt_then_deleted_then_fixed(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    good = harness.refresher.snapshot
    harness.registry.path.write_bytes(b"\x00\x01")
    assert await harness.refresher.check() is False
    corrupt_problem = harness.refresher.problem
    harness.registry.path.unlink()
    assert await harness.refresher.check() is False
    assert harness.refresher.problem != corrupt_problem
    assert harness.refresher.snapshot is good
    write(harness.registry, "rider")
    assert await harness.refresher.check() is True
    assert harness.refresher.problem is None


async def test_background_task_picks_up_changes(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "registry.db", interval=0.01)
    assert harness.refresher.interval == 0.05  # never busier than 20 checks a second
    write(harness.registry)
    await harness.refresher.load_initial()
    harness.refresher.start()
    harness.refresher.start()  # a second start is a no-op
    try:
        write(harness.registry, "rider")
        for _ in range(200):
            if harness.versions[-1] == 2:
                break
            await asyncio.sleep(0.01)
        assert harness.versions == [1, 2]

        harness.registry.path.write_text("garbage")
        for _ in range(200):
            if harness.refresher.problem is not None:
                break
            await asyncio.sleep(0.01)
        assert harness.refresher.problem is not None
        assert harness.versions == [1, 2]
    finally:
        await harness.refresher.stop()
    await harness.refresher.stop()  # stopping twice is harmless
    # Stopped: later writes are not picked up.
    harness.registry.path.unlink()
    write(harness.registry, "late")
    await asyncio.sleep(0.15)
    assert harness.versions == [1, 2]


async def test_recreated_registry_with_the_same_version_is_installed(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    harness.registry.path.unlink()
    recreated = write(harness.registry, "rider")
    assert recreated.version == 1  # same version as the snapshot being served
    assert await harness.refresher.check() is True
    assert harness.refresher.snapshot == recreated
    snapshot = harness.refresher.snapshot
    assert snapshot is not None and list(snapshot.entities) == ["rider"]
