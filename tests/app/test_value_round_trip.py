"""Property tests: every value type written over HTTP reads back as documented, on both
online stores (SQLite and a real redis-server), and out-of-range values are a 422."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from stores import timestamps
from tests.app.sync_app import SyncApp
from tests.support import RedisServer, apply_now, write_parquet, write_repo
from tests.value_strategies import OUT_OF_RANGE, VALUES, Pair, same_json

REDIS_DB = 4


def column_name(dtype: str) -> str:
    """Array(Int32) -> array_int32, UnixTimestamp -> unixtimestamp."""
    return dtype.lower().replace("(", "_").replace(")", "")


FEATURES = {column_name(dtype): dtype for dtype in VALUES}
#: A source column of a fitting DuckDB type per feature, so that `ladle apply` accepts it.
_DUCKDB = {
    "Int32": "1::INTEGER",
    "Int64": "1::BIGINT",
    "Float32": "1::FLOAT",
    "Float64": "1::DOUBLE",
    "String": "'a'",
    "Bytes": "'a'::BLOB",
    "Bool": "true",
    "UnixTimestamp": "TIMESTAMP '2026-01-01'",
    "Json": "'{}'",
    "Map": "MAP {'a': 1}",
}


def _source_column(dtype: str) -> str:
    if dtype.startswith("Array("):
        return f"[{_DUCKDB[dtype[len('Array(') : -1]]}]"
    return _DUCKDB[dtype]


DEFINITIONS = f"""
from registry import (Array, Bool, Bytes, Entity, FeatureView, Field, FileSource, Float32,
                      Float64, Int32, Int64, Json, Map, String, UnixTimestamp, ValueType)

item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
typed = FeatureView(
    name="typed", entities=[item],
    schema=[{", ".join(f"Field(name={n!r}, dtype={d})" for n, d in FEATURES.items())}],
    source=FileSource(path="data/typed.parquet", timestamp_field="ts"))
"""


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncApp]:
    if request.param == "sqlite":
        store: dict[str, object] = {"type": "sqlite", "path": "data/online.db"}
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis.Redis(port=server.port, db=REDIS_DB).flushdb()
        store = {"type": "redis", "connection_string": f"{server.connection_string},db={REDIS_DB}"}
    root = write_repo(tmp_path_factory.mktemp("typed"), DEFINITIONS, online_store=store)
    columns = ", ".join(f"{_source_column(d)} AS {n}" for n, d in FEATURES.items())
    write_parquet(
        root / "data/typed.parquet",
        f"SELECT 1::BIGINT AS item_id, TIMESTAMP '2026-01-01' AS ts, {columns}",
    )
    apply_now(root)
    with SyncApp(root) as app:
        yield app


_ids = itertools.count(1000)  # fresh entities for the 422 tests
_NULL: st.SearchStrategy[Pair] = st.just((None, None))
ROWS = st.lists(
    st.fixed_dictionaries({name: _NULL | VALUES[dtype] for name, dtype in FEATURES.items()}),
    min_size=1,
    max_size=3,
)
EVENT_TIME = "2026-11-21T08:00:00.123456Z"


def write(app: SyncApp, ids: list[int], columns: dict[str, list[Any]]) -> Any:
    df = {"item_id": ids, "ts": [EVENT_TIME] * len(ids), **columns}
    return app.post("/write-to-online-store", json={"feature_view_name": "typed", "df": df})


def read(app: SyncApp, ids: list[int]) -> dict[str, Any]:
    response = app.post(
        "/get-online-features",
        json={"entities": {"item_id": ids}, "features": [f"typed:{n}" for n in FEATURES]},
    )
    assert response.status_code == 200, response.text
    body = orjson.loads(response.content)
    names = body["metadata"]["feature_names"]
    return dict(zip(names, body["results"], strict=True))


def check(dtype: str, actual: Any, expected: Any) -> None:
    if dtype == "Json" and expected is not None:
        assert orjson.loads(actual) == orjson.loads(expected)
    else:
        assert same_json(actual, expected), (dtype, actual, expected)


@settings(max_examples=40)
@given(rows=ROWS)
def test_every_type_reads_back_as_written(served: SyncApp, rows: list[dict[str, Pair]]) -> None:
    # The same few entities every time: each write after the first replaces records.
    ids = list(range(1, len(rows) + 1))
    columns = {name: [row[name][0] for row in rows] for name in FEATURES}
    response = write(served, ids, columns)
    assert response.status_code == 200, response.text
    results = read(served, ids)
    for name, dtype in FEATURES.items():
        column = results[name]
        for index, row in enumerate(rows):
            expected = row[name][1]
            want = "NULL_VALUE" if expected is None else "PRESENT"
            assert column["statuses"][index] == want, (name, column)
            check(dtype, column["values"][index], expected)
            assert column["event_timestamps"][index] == timestamps.format_us(
                timestamps.parse(EVENT_TIME)
            )


@pytest.mark.parametrize(
    ("dtype", "value"), [(d, v) for d, values in OUT_OF_RANGE.items() for v in values]
)
def test_out_of_range_is_a_422_and_nothing_is_written(
    served: SyncApp, dtype: str, value: Any
) -> None:
    name = column_name(dtype)
    ids = [next(_ids), next(_ids)]
    # Row 0 is fine, row 1 is not: the whole request is refused.
    columns: dict[str, list[Any]] = {n: [None, None] for n in FEATURES}
    columns[name] = [None, value]
    response = write(served, ids, columns)
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["type"] == "invalid_column"
    assert detail["loc"] == ["body", "df", name, 1]
    assert read(served, ids)[name]["statuses"] == ["NOT_FOUND", "NOT_FOUND"]
