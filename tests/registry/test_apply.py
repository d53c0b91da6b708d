"""``apply_repo``: a repo's definitions, checked against real data, written to the registry."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest

from registry.apply import apply_repo
from registry.file_registry import FileRegistry
from registry.model import (
    EntitySpec,
    FeatureServiceSpec,
    FieldSpec,
    FileSourceSpec,
    MaterializationSpec,
    ProjectionSpec,
    PushSourceSpec,
    RegistrySnapshot,
)
from registry.repo import RepoError
from tests.registry.repos import BASE, HEADER, apply_error, make_repo, write_file
from tests.support import write_parquet

FULL_REPO = (
    BASE
    + """
customer = Entity(name="customer", join_keys=["customer_id"], description="who pays",
                  tags={"team": "growth"})
customers = FileSource(name="customers_src", path="data/customers.parquet", timestamp_field="ts")
stats_push = PushSource(name="stats_push", batch_source=stats)

driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="conv_rate", dtype=Float32), Field(name="acc_rate", dtype=Float64),
            Field(name="trips", dtype=Int64, description="trips per day"),
            Field(name="city", dtype=String), Field(name="scores", dtype=Array(Float64)),
            Field(name="active", dtype=Bool), Field(name="score_dec", dtype=Float64)],
    source=stats, description="hourly stats", tags={"owner": "ops"})

driver_pushed = FeatureView(
    name="driver_pushed", entities=[driver], ttl=None,
    schema=[Field(name="driver_id", dtype=Int64), Field(name="trips", dtype=Int64)],
    source=stats_push, online=False)

customer_spend = FeatureView(
    name="customer_spend", entities=[customer], ttl=timedelta(hours=2, seconds=30),
    schema=[Field(name="spend", dtype=Float64)], source=customers)

activity = FeatureService(
    name="activity",
    features=[driver_stats[["trips", "conv_rate"]], customer_spend],
    description="for the ranking model")
"""
)


def test_valid_repo_is_written_with_every_object(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, FULL_REPO)
    report = asyncio.run(apply_repo(settings))
    snapshot = report.snapshot

    assert snapshot.project == "test_project"
    assert snapshot.version == 1
    assert snapshot.updated_at
    assert FileRegistry(settings.registry_path).read() == snapshot

    assert snapshot.entities == {
        "driver": EntitySpec(name="driver", join_key="driver_id", dtype="Int64"),
        "customer": EntitySpec(
            name="customer",
            join_key="customer_id",
            dtype="",
            description="who pays",
            tags={"team": "growth"},
        ),
    }
    assert sorted(snapshot.feature_views) == ["customer_spend", "driver_pushed", "driver_stats"]

    stats = snapshot.feature_views["driver_stats"]
    assert stats.entities == ["driver"]
    assert stats.join_keys == [FieldSpec("driver_id", "Int64")]
    assert [(f.name, f.dtype) for f in stats.features] == [
        ("conv_rate", "Float32"),
        ("acc_rate", "Float64"),
        ("trips", "Int64"),
        ("city", "String"),
        ("scores", "Array(Float64)"),
        ("active", "Bool"),
        ("score_dec", "Float64"),
    ]
    assert stats.feature("trips") == FieldSpec("trips", "Int64", "trips per day")
    assert stats.ttl_seconds == 86400.0
    assert stats.online is True
    assert stats.description == "hourly stats"
    assert stats.tags == {"owner": "ops"}
    assert stats.source == FileSourceSpec(
        name="data/stats.parquet",
        path="data/stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        file_format="parquet",
    )

    pushed = snapshot.feature_views["driver_pushed"]
    # A join key listed in the schema is a key, not a feature.
    assert [f.name for f in pushed.features] == ["trips"]
    assert pushed.join_keys == [FieldSpec("driver_id", "Int64")]
    assert pushed.ttl_seconds == 0.0
    assert pushed.online is False
    assert isinstance(pushed.source, PushSourceSpec)
    assert pushed.source.name == "stats_push"
    assert pushed.source.batch_source.path == "data/stats.parquet"

    spend = snapshot.feature_views["customer_spend"]
    # The customer entity has no value_type: the key's type comes from the VARCHAR column.
    assert spend.join_keys == [FieldSpec("customer_id", "String")]
    assert spend.ttl_seconds == 7230.0
    assert spend.source == FileSourceSpec(
        name="customers_src", path="data/customers.parquet", timestamp_field="ts"
    )

    assert snapshot.feature_services == {
        "activity": FeatureServiceSpec(
            name="activity",
            projections=[
                ProjectionSpec("driver_stats", ["trips", "conv_rate"]),
                ProjectionSpec("customer_spend", ["spend"]),
            ],
            description="for the ranking model",
        )
    }
    assert sorted(report.created) == [
        "entity customer",
        "entity driver",
        "feature service activity",
        "feature view customer_spend",
        "feature view driver_pushed",
        "feature view driver_stats",
    ]
    assert report.updated == report.deleted == report.deleted_views == []


def test_join_key_types_from_entity_schema_or_source(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "data" / "keys.parquet",
        """
        SELECT 1::INTEGER AS small_id, 2::BIGINT AS big_id, 'x' AS name_id, '\\x01'::BLOB AS raw_id,
               3::BIGINT AS wide_id, TIMESTAMP '2024-01-01' AS ts, 1.5::DOUBLE AS value""",
    )
    settings = make_repo(
        tmp_path,
        HEADER
        + """
small = Entity(name="small", join_keys=["small_id"])
big = Entity(name="big", join_keys=["big_id"])
named = Entity(name="named", join_keys=["name_id"])
raw = Entity(name="raw", join_keys=["raw_id"], value_type=Bytes)
wide = Entity(name="wide", join_keys=["wide_id"])
src = FileSource(path="data/keys.parquet", timestamp_field="ts")
keyed = FeatureView(name="keyed", entities=[small, big, named, raw, "wide"], source=src,
                    schema=[Field(name="wide_id", dtype=Int32), Field(name="value", dtype=Float64)])
""",
    )
    view = asyncio.run(apply_repo(settings)).snapshot.feature_views["keyed"]
    assert view.entities == ["small", "big", "named", "raw", "wide"]
    assert view.join_keys == [
        FieldSpec("small_id", "Int64"),  # an integer column: keys are stored as Int64
        FieldSpec("big_id", "Int64"),
        FieldSpec("name_id", "String"),
        FieldSpec("raw_id", "Bytes"),
        FieldSpec("wide_id", "Int32"),  # declared in the schema
    ]
    assert [f.name for f in view.features] == ["value"]


def test_field_mapping_renames_source_columns(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
renamed = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",
                     name="renamed", field_mapping={"trips": "daily_trips", "city": "home_city"})
view = FeatureView(name="view", entities=[driver], source=renamed,
                   schema=[Field(name="daily_trips", dtype=Int64),
                           Field(name="home_city", dtype=String)])
""",
    )
    view = asyncio.run(apply_repo(settings)).snapshot.feature_views["view"]
    assert [f.name for f in view.features] == ["daily_trips", "home_city"]
    assert isinstance(view.source, FileSourceSpec)
    assert view.source.field_mapping == {"trips": "daily_trips", "city": "home_city"}


def test_csv_source_is_read_as_csv(tmp_path: Path) -> None:
    write_file(
        tmp_path,
        "data/rides.csv",
        """\
        driver_id,ts,distance
        1001,2024-01-01 00:00:00,3.5
        1002,2024-01-01 01:00:00,7.25
        """,
    )
    settings = make_repo(
        tmp_path,
        BASE
        + """
rides = FileSource(path="data/rides.csv", timestamp_field="ts")
rides_view = FeatureView(name="rides", entities=[driver], source=rides,
                         schema=[Field(name="distance", dtype=Float64)])
""",
    )
    view = asyncio.run(apply_repo(settings)).snapshot.feature_views["rides"]
    assert isinstance(view.source, FileSourceSpec)
    assert view.source.file_format == "csv"
    assert [f.name for f in view.features] == ["distance"]


def test_glob_source_path(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "data" / "parts" / "a.parquet",
        "SELECT 1::BIGINT AS driver_id, TIMESTAMP '2024-01-01' AS ts, 1::BIGINT AS n",
    )
    write_parquet(
        tmp_path / "data" / "parts" / "b.parquet",
        "SELECT 2::BIGINT AS driver_id, TIMESTAMP '2024-01-02' AS ts, 2::BIGINT AS n",
    )
    settings = make_repo(
        tmp_path,
        BASE
        + """
parts = FileSource(path="data/parts/*.parquet", timestamp_field="ts")
counts = FeatureView(name="counts", entities=[driver], source=parts,
                     schema=[Field(name="n", dtype=Int64)])
""",
    )
    assert "counts" in asyncio.run(apply_repo(settings)).snapshot.feature_views


def test_definitions_spread_over_files_and_packages(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, "")
    write_file(tmp_path, "__init__.py", "")
    write_file(
        tmp_path,
        "entities/__init__.py",
        """
        from registry import Entity, ValueType
        driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
        """,
    )
    write_file(
        tmp_path,
        "views/stats.py",
        """
        from registry import FeatureView, Field, FileSource, Int64
        from entities import driver
        stats = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp")
        driver_stats = FeatureView(name="driver_stats", entities=[driver], source=stats,
                                   schema=[Field(name="trips", dtype=Int64)])
        """,
    )
    write_file(
        tmp_path,
        "services.py",
        """
        from registry import FeatureService
        from views.stats import driver_stats
        svc = FeatureService(name="svc", features=[driver_stats])
        """,
    )
    snapshot = asyncio.run(apply_repo(settings)).snapshot
    assert list(snapshot.entities) == ["driver"]
    assert list(snapshot.feature_views) == ["driver_stats"]
    assert snapshot.feature_services["svc"].projections == [
        ProjectionSpec("driver_stats", ["trips"])
    ]


def test_version_increments_on_each_apply(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
view = FeatureView(name="view", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
""",
    )
    first = asyncio.run(apply_repo(settings))
    second = asyncio.run(apply_repo(settings))
    third = asyncio.run(apply_repo(settings))
    assert [first.snapshot.version, second.snapshot.version, third.snapshot.version] == [1, 2, 3]
    assert FileRegistry(settings.registry_path).read().version == 3
    # Unchanged definitions: nothing created, updated or deleted.
    assert second.created == second.updated == second.deleted == []
    assert third.created == third.updated == third.deleted == []
    assert second.snapshot.feature_views == first.snapshot.feature_views


def test_changes_are_reported_and_removed_views_listed(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
keep = FeatureView(name="keep", entities=[driver], source=stats, ttl=timedelta(days=1),
                   schema=[Field(name="trips", dtype=Int64)])
gone = FeatureView(name="gone", entities=[driver], source=stats,
                   schema=[Field(name="city", dtype=String)])
svc = FeatureService(name="svc", features=[gone])
""",
    )
    asyncio.run(apply_repo(settings))
    (tmp_path / "features.py").write_text(
        BASE
        + """
keep = FeatureView(name="keep", entities=[driver], source=stats, ttl=timedelta(days=7),
                   schema=[Field(name="trips", dtype=Int64)])
added = FeatureView(name="added", entities=[driver], source=stats,
                    schema=[Field(name="active", dtype=Bool)])
"""
    )
    report = asyncio.run(apply_repo(settings))
    assert report.snapshot.version == 2
    assert sorted(report.snapshot.feature_views) == ["added", "keep"]
    assert report.snapshot.feature_views["keep"].ttl_seconds == 7 * 86400.0
    assert report.snapshot.feature_services == {}
    assert report.created == ["feature view added"]
    assert report.updated == ["feature view keep"]
    assert sorted(report.deleted) == ["feature service svc", "feature view gone"]
    assert report.deleted_views == ["gone"]
    assert FileRegistry(settings.registry_path).read() == report.snapshot


def test_edit_of_same_size_within_the_same_second_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's default: imports cache bytecode that is trusted while the source's size and
    # whole-second mtime are unchanged. Tools that rewrite definitions quickly must not
    # get the old definitions back.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    template = (
        BASE
        + """
view = FeatureView(name="view", entities=[driver], source=stats, ttl=timedelta(days=TTL),
                   schema=[Field(name="trips", dtype=Int64)])
"""
    )
    settings = make_repo(tmp_path, template.replace("TTL", "1"))
    assert asyncio.run(apply_repo(settings)).snapshot.feature_views["view"].ttl_seconds == 86400.0
    (tmp_path / "features.py").write_text(template.replace("TTL", "2"))
    assert (
        asyncio.run(apply_repo(settings)).snapshot.feature_views["view"].ttl_seconds == 2 * 86400.0
    )


def test_ladleignore_and_default_skips(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
view = FeatureView(name="view", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
""",
    )
    broken = "raise RuntimeError('this file must not be imported')\n"
    for relative in [
        "scratch/a.py",
        "scratch/deeper/b.py",
        "old_features.py",
        "pkg/experimental/c.py",
        "notes_draft.py",
        "keep/ignored_here.py",
        ".hidden/d.py",
        "venv/lib/e.py",
        ".venv/lib/f.py",
        "data/g.py",
        "__pycache__/h.py",
        "node_modules/i.py",
    ]:
        write_file(tmp_path, relative, broken)
    write_file(
        tmp_path,
        "keep/more.py",
        """
        from registry import Entity
        rider = Entity(name="rider", join_keys=["rider_id"])
        """,
    )
    write_file(
        tmp_path,
        ".ladleignore",
        """
        # a comment, then blank lines and patterns

        scratch/
        old_features.py
        pkg/experimental
        *_draft.py
        keep/ignored_*.py
        """,
    )
    snapshot = asyncio.run(apply_repo(settings)).snapshot
    assert sorted(snapshot.entities) == ["driver", "rider"]


def test_without_ladleignore_a_broken_file_fails(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, BASE)
    write_file(tmp_path, "scratch/a.py", "raise RuntimeError('imported scratch')\n")
    message = apply_error(settings)
    assert str(tmp_path.resolve() / "scratch" / "a.py") in message
    assert "imported scratch" in message


def test_failed_apply_keeps_the_previous_registry(tmp_path: Path) -> None:
    good = (
        BASE
        + """
view = FeatureView(name="view", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
"""
    )
    settings = make_repo(tmp_path, good)
    before = asyncio.run(apply_repo(settings)).snapshot
    (tmp_path / "features.py").write_text(good.replace('"trips"', '"no_such_column"'))
    with pytest.raises(RepoError, match="no_such_column"):
        asyncio.run(apply_repo(settings))
    assert FileRegistry(settings.registry_path).read() == before


def test_materialization_windows_survive_only_unchanged_views(tmp_path: Path) -> None:
    defs = (
        BASE
        + """
same = FeatureView(name="same", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
edited = FeatureView(name="edited", entities=[driver], source=stats,
                     schema=[Field(name="city", dtype=String)])
removed = FeatureView(name="removed", entities=[driver], source=stats,
                      schema=[Field(name="active", dtype=Bool)])
"""
    )
    settings = make_repo(tmp_path, defs)
    asyncio.run(apply_repo(settings))
    registry = FileRegistry(settings.registry_path)
    window = MaterializationSpec(start_us=1, end_us=2)

    def record(current: RegistrySnapshot | None) -> RegistrySnapshot:
        assert current is not None
        windows = {name: window for name in current.feature_views}
        return msgspec.structs.replace(current, materializations=windows)

    registry.update_sync(record)
    edited = defs.replace('"city", dtype=String', '"city", dtype=String, description="where"')
    (tmp_path / "features.py").write_text(edited.split("removed =")[0])
    snapshot = asyncio.run(apply_repo(settings)).snapshot
    assert snapshot.version == 3
    assert snapshot.materializations == {"same": window}


def test_registry_of_another_project_is_replaced(tmp_path: Path) -> None:
    defs = (
        BASE
        + """
view = FeatureView(name="view", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
"""
    )
    settings = make_repo(tmp_path, defs)
    first = asyncio.run(apply_repo(settings))
    assert first.snapshot.project == "test_project"
    other = make_repo(tmp_path, defs, project="other_project")
    report = asyncio.run(apply_repo(other))
    assert report.snapshot.project == "other_project"
    assert report.snapshot.version == 2  # versions never go back for readers
    assert "feature view view" in report.created
    assert report.deleted == []


def test_apply_replaces_a_corrupt_registry(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, FULL_REPO)
    asyncio.run(apply_repo(settings))
    settings.registry_path.write_text("{truncated")
    with pytest.raises(Exception, match="corrupt"):
        FileRegistry(settings.registry_path).read()
    report = asyncio.run(apply_repo(settings))
    assert report.snapshot.version == 1
    assert FileRegistry(settings.registry_path).read().feature_views.keys() == {
        "driver_stats",
        "driver_pushed",
        "customer_spend",
    }
