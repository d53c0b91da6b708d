"""Every inconsistency in a repo is a RepoError naming the object and the file it is in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registry.apply import apply_repo
from registry.compile import duckdb_type_fits
from registry.repo import RepoError
from tests.registry.repos import BASE, HEADER, apply_error, make_repo, write_file
from tests.support import write_parquet

VIEW = (
    BASE
    + """
view = FeatureView(name="view", entities=[driver], source=stats,
                   schema=[Field(name="trips", dtype=Int64)])
"""
)


def only_problem(message: str) -> str:
    """The single problem listed in a RepoError message."""
    lines = message.splitlines()
    assert lines[0] == "the feature repo has problems:"
    assert len(lines) == 2, message
    assert lines[1].startswith("  - ")
    return lines[1][len("  - ") :]


# (id, definitions appended to BASE, expected problem line)
VIEW_PROBLEMS = [
    (
        "unknown entity by name",
        'v = FeatureView(name="v", entities=["nope"], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): uses entity 'nope', which the repo does not declare",
    ),
    (
        "undeclared entity object",
        'v = FeatureView(name="v", entities=[Entity(name="ghost", join_keys=["driver_id"])],\n'
        '                source=stats, schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): uses entity 'ghost', which the repo does not declare",
    ),
    (
        "field missing from the source",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64),\n'
        '                        Field(name="speed", dtype=Float64)])',
        "feature view 'v' (features.py): feature 'speed' is missing from source "
        "'data/stats.parquet'",
    ),
    (
        "String field over a BIGINT column",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=String)])',
        "feature view 'v' (features.py): feature 'trips' is String but source "
        "'data/stats.parquet' holds BIGINT",
    ),
    (
        "Int64 field over a VARCHAR column",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="city", dtype=Int64)])',
        "feature view 'v' (features.py): feature 'city' is Int64 but source "
        "'data/stats.parquet' holds VARCHAR",
    ),
    (
        "array field over a scalar column",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="acc_rate", dtype=Array(Float64))])',
        "feature view 'v' (features.py): feature 'acc_rate' is Array(Float64) but source "
        "'data/stats.parquet' holds DOUBLE",
    ),
    (
        "scalar field over an array column",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="scores", dtype=Float64)])',
        "feature view 'v' (features.py): feature 'scores' is Float64 but source "
        "'data/stats.parquet' holds DOUBLE[]",
    ),
    (
        "dtype is a Python type",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=int),\n'
        '                        Field(name="city", dtype=String)])',
        "feature view 'v' (features.py): field 'trips': dtype must be a type such as Int64 or "
        "Array(Float32)",
    ),
    (
        "dtype is a string",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype="Int64"),\n'
        '                        Field(name="city", dtype=String)])',
        "feature view 'v' (features.py): field 'trips': dtype must be a type such as Int64 or "
        "Array(Float32)",
    ),
    (
        "service over an offline view",
        'v = FeatureView(name="v", entities=[driver], source=stats, online=False,\n'
        '                schema=[Field(name="trips", dtype=Int64)])\n'
        's = FeatureService(name="s", features=[v])',
        "feature service 's' (features.py): feature view 'v' is not served online (online=False)",
    ),
    (
        "service listing a feature twice",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])\n'
        's = FeatureService(name="s", features=[v[["trips", "trips"]]])',
        "feature service 's' (features.py): lists a feature of 'v' twice",
    ),
    (
        "field declared twice",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64),\n'
        '                        Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): field 'trips' is declared twice",
    ),
    (
        "field name with a colon",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="a:b", dtype=Int64)])',
        "feature view 'v' (features.py): field 'a:b': names may not contain ':' or '@'",
    ),
    (
        "no features",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="driver_id", dtype=Int64)])',
        "feature view 'v' (features.py): declares no features in its schema",
    ),
    (
        "missing source file",
        'missing = FileSource(path="data/nope.parquet", timestamp_field="ts")\n'
        'v = FeatureView(name="v", entities=[driver], source=missing,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): cannot read source 'data/nope.parquet' at ",
    ),
    (
        "missing timestamp column",
        'late = FileSource(path="data/stats.parquet", timestamp_field="ts", name="late")\n'
        'v = FeatureView(name="v", entities=[driver], source=late,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): column 'ts' is missing from source 'late'",
    ),
    (
        "missing created timestamp column",
        'late = FileSource(path="data/stats.parquet", timestamp_field="event_timestamp",\n'
        '                  created_timestamp_column="inserted", name="late")\n'
        'v = FeatureView(name="v", entities=[driver], source=late,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): column 'inserted' is missing from source 'late'",
    ),
    (
        "join key missing from the source",
        'rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.STRING)\n'
        'v = FeatureView(name="v", entities=[rider], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): join key 'rider_id' is missing from source "
        "'data/stats.parquet'",
    ),
    (
        "join key column of another type than the entity",
        'by_name = Entity(name="by_name", join_keys=["driver_id"], value_type=ValueType.STRING)\n'
        'v = FeatureView(name="v", entities=[by_name], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): join key 'driver_id' is String but source "
        "'data/stats.parquet' holds BIGINT",
    ),
    (
        "join key in the schema disagrees with the entity",
        'v = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                schema=[Field(name="driver_id", dtype=Int32),\n'
        '                        Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): field 'driver_id' is Int32 but entity 'driver' is Int64",
    ),
    (
        "join key type undeterminable",
        'by_rate = Entity(name="by_rate", join_keys=["acc_rate"])\n'
        'v = FeatureView(name="v", entities=[by_rate], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): join key 'acc_rate' needs a type of "
        "['Bytes', 'Int32', 'Int64', 'String']; give the entity a value_type or add the field "
        "to the schema",
    ),
    (
        "negative ttl",
        'v = FeatureView(name="v", entities=[driver], source=stats, ttl=timedelta(seconds=-1),\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): ttl must not be negative",
    ),
    (
        "ttl not a timedelta",
        'v = FeatureView(name="v", entities=[driver], source=stats, ttl=3600,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): ttl must be a datetime.timedelta",
    ),
    (
        "source not a source",
        'v = FeatureView(name="v", entities=[driver], source="data/stats.parquet",\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'v' (features.py): source must be a FileSource or PushSource, not str",
    ),
    (
        "view name with a space",
        'v = FeatureView(name="my view", entities=[driver], source=stats,\n'
        '                schema=[Field(name="trips", dtype=Int64)])',
        "feature view 'my view' (features.py): name must start with a letter or '_' and hold "
        "only letters, digits, '_', '-' and '.'",
    ),
    (
        "entity with two join keys",
        'pair = Entity(name="pair", join_keys=["a", "b"])',
        "entity 'pair' (features.py): exactly one join key is supported",
    ),
    (
        "entity value_type that cannot be a key",
        'rated = Entity(name="rated", value_type=ValueType.DOUBLE)',
        "entity 'rated' (features.py): value_type Float64 cannot be a join key (use one of "
        "['Bytes', 'Int32', 'Int64', 'String'])",
    ),
    (
        "entity value_type not a type",
        'odd = Entity(name="odd", value_type=int)',
        "entity 'odd' (features.py): value_type <class 'int'> is not a type",
    ),
    (
        "duplicate view names",
        'v1 = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                 schema=[Field(name="trips", dtype=Int64)])\n'
        'v2 = FeatureView(name="v", entities=[driver], source=stats,\n'
        '                 schema=[Field(name="city", dtype=String)])',
        "feature view 'v' (features.py): duplicate name; already declared as feature view 'v' "
        "(features.py)",
    ),
]


@pytest.mark.parametrize(
    ("definitions", "expected"), [c[1:] for c in VIEW_PROBLEMS], ids=[c[0] for c in VIEW_PROBLEMS]
)
def test_problem_names_the_object_and_file(tmp_path: Path, definitions: str, expected: str) -> None:
    message = apply_error(make_repo(tmp_path, BASE + definitions + "\n"))
    assert only_problem(message).startswith(expected), message


SERVICE_PROBLEMS = [
    (
        "undeclared view",
        'ghost = [FeatureView(name="ghost", entities=[driver], source=stats,\n'
        '                     schema=[Field(name="trips", dtype=Int64)])]\n'
        'svc = FeatureService(name="svc", features=[view, ghost[0]])',
        "feature service 'svc' (features.py): uses feature view 'ghost', which the repo does not "
        "declare",
    ),
    (
        "missing feature",
        'svc = FeatureService(name="svc", features=[view[["trips", "nope"]]])',
        "feature service 'svc' (features.py): feature view 'view' has no feature 'nope'",
    ),
    (
        "join key is not a feature",
        'svc = FeatureService(name="svc", features=[view[["driver_id"]]])',
        "feature service 'svc' (features.py): feature view 'view' has no feature 'driver_id'",
    ),
    (
        "not a view",
        'svc = FeatureService(name="svc", features=["view"])',
        "feature service 'svc' (features.py): features must hold feature views, not str",
    ),
    (
        "empty",
        'svc = FeatureService(name="svc", features=[])',
        "feature service 'svc' (features.py): holds no features",
    ),
    (
        "duplicate service names",
        's1 = FeatureService(name="svc", features=[view])\n'
        's2 = FeatureService(name="svc", features=[view[["trips"]]])',
        "feature service 'svc' (features.py): duplicate name; already declared as feature "
        "service 'svc' (features.py)",
    ),
]


@pytest.mark.parametrize(
    ("definitions", "expected"),
    [c[1:] for c in SERVICE_PROBLEMS],
    ids=[c[0] for c in SERVICE_PROBLEMS],
)
def test_feature_service_problems(tmp_path: Path, definitions: str, expected: str) -> None:
    message = apply_error(make_repo(tmp_path, VIEW + definitions + "\n"))
    assert only_problem(message) == expected, message


def test_single_feature_projection_by_string(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path, VIEW + 'svc = FeatureService(name="svc", features=[view["trips"]])\n'
    )
    service = asyncio.run(apply_repo(settings)).snapshot.feature_services["svc"]
    assert [(p.view, p.features) for p in service.projections] == [("view", ["trips"])]


def test_service_over_a_broken_view_reports_only_the_view(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
v = FeatureView(name="v", entities=[driver], source=stats,
                schema=[Field(name="trips", dtype=String)])
svc = FeatureService(name="svc", features=[v])
""",
    )
    problem = only_problem(apply_error(settings))
    assert problem.startswith("feature view 'v' (features.py): feature 'trips' is String")


def test_duplicate_entity_across_files_names_both_files(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, VIEW)
    write_file(
        tmp_path,
        "more/entities.py",
        """
        from registry import Entity
        driver_again = Entity(name="driver", join_keys=["driver_key"])
        """,
    )
    assert only_problem(apply_error(settings)) == (
        "entity 'driver' (more/entities.py): duplicate name; already declared as entity "
        "'driver' (features.py)"
    )


def test_object_imported_into_another_file_is_not_a_duplicate(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, VIEW)
    write_file(
        tmp_path,
        "services.py",
        """
        from registry import FeatureService
        from features import driver, stats, view
        svc = FeatureService(name="svc", features=[view])
        """,
    )
    snapshot = asyncio.run(apply_repo(settings)).snapshot
    assert list(snapshot.entities) == ["driver"]
    assert list(snapshot.feature_services) == ["svc"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        BASE
        + """
a = FeatureView(name="a", entities=["nope"], source=stats,
                schema=[Field(name="trips", dtype=Int64)])
b = FeatureView(name="b", entities=[driver], source=stats,
                schema=[Field(name="city", dtype=Float32)])
c = FeatureView(name="c", entities=[driver], source=stats,
                schema=[Field(name="trips", dtype=Int64)])
svc = FeatureService(name="svc", features=[c[["nope"]]])
""",
    )
    message = apply_error(settings)
    problems = message.splitlines()[1:]
    assert len(problems) == 3, message
    assert problems[0].startswith("  - feature view 'a' (features.py): uses entity 'nope'")
    assert problems[1].startswith(
        "  - feature view 'b' (features.py): feature 'city' is "
        "Float32 but source 'data/stats.parquet' holds VARCHAR"
    )
    assert (
        problems[2] == "  - feature service 'svc' (features.py): feature view 'c' has no "
        "feature 'nope'"
    )


def test_unreadable_source_data(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, VIEW)
    (tmp_path / "data" / "stats.parquet").write_bytes(b"not parquet at all")
    problem = only_problem(apply_error(settings))
    assert problem.startswith(
        "feature view 'view' (features.py): cannot read source 'data/stats.parquet' at "
    )
    assert str(tmp_path.resolve() / "data" / "stats.parquet") in problem


def test_join_key_type_from_a_double_column_is_undeterminable(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "data" / "double_keys.parquet",
        "SELECT 1.5::DOUBLE AS key, TIMESTAMP '2024-01-01' AS ts, 1::BIGINT AS n",
    )
    settings = make_repo(
        tmp_path,
        HEADER
        + """
thing = Entity(name="thing", join_keys=["key"])
src = FileSource(path="data/double_keys.parquet", timestamp_field="ts")
v = FeatureView(name="v", entities=[thing], source=src, schema=[Field(name="n", dtype=Int64)])
""",
    )
    assert "join key 'key' needs a type of" in only_problem(apply_error(settings))


def test_file_that_raises_on_import_is_named(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, VIEW)
    path = write_file(
        tmp_path,
        "broken.py",
        """
        from registry import Entity
        value = 1 / 0
        """,
    )
    message = apply_error(settings)
    assert message.startswith(f"{path.resolve()}: failed to import:")
    assert "ZeroDivisionError" in message
    assert f'File "{path.resolve()}", line 3' in message


def test_file_with_a_syntax_error_is_named(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, VIEW)
    path = write_file(tmp_path, "typo.py", "def broken(:\n    pass\n")
    message = apply_error(settings)
    assert message.startswith(f"{path.resolve()}: failed to import:")
    assert "SyntaxError" in message


def test_features_file_itself_failing_to_import(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, BASE + "from registry import NoSuchThing\n")
    message = apply_error(settings)
    assert message.startswith(f"{(tmp_path / 'features.py').resolve()}: failed to import:")
    assert "ImportError" in message
    assert "NoSuchThing" in message


def test_load_error_leaves_no_repo_on_sys_path(tmp_path: Path) -> None:
    import sys

    settings = make_repo(tmp_path, "raise ValueError('boom')\n")
    with pytest.raises(RepoError, match="boom"):
        asyncio.run(apply_repo(settings))
    assert str(tmp_path.resolve()) not in sys.path


@pytest.mark.parametrize(
    ("dtype", "column", "fits"),
    [
        ("Int64", "BIGINT", True),
        ("Int32", "INTEGER", True),
        ("Int64", "HUGEINT", True),
        ("Int64", "DOUBLE", False),
        ("Float32", "FLOAT", True),
        ("Float64", "BIGINT", True),
        ("Float64", "DECIMAL(10,2)", True),
        ("Int64", "DECIMAL(10,2)", False),
        ("String", "VARCHAR", True),
        ("String", "BIGINT", False),
        ("Bytes", "BLOB", True),
        ("Bool", "BOOLEAN", True),
        ("Bool", "INTEGER", False),
        ("UnixTimestamp", "TIMESTAMP WITH TIME ZONE", True),
        ("UnixTimestamp", "DATE", True),
        ("UnixTimestamp", "BIGINT", True),
        ("UnixTimestamp", "VARCHAR", False),
        ("Json", "VARCHAR", True),
        ("Json", "STRUCT(a INTEGER)", True),
        ("Map", "MAP(VARCHAR, VARCHAR)", True),
        ("Map", "VARCHAR", False),
        ("Array(Float32)", "FLOAT[]", True),
        ("Array(String)", "VARCHAR[]", True),
        ("Array(Int64)", "VARCHAR[]", False),
        ("Array(Int64)", "BIGINT", False),
        ("String", "varchar", True),
    ],
)
def test_duckdb_type_fits(dtype: str, column: str, fits: bool) -> None:
    assert duckdb_type_fits(dtype, column) is fits
