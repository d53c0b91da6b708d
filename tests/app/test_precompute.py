"""Feature services with precompute_online, through the app, on both online stores.

Every read of the precomputed service ``pre`` is compared byte for byte with the same
features read view by view (service ``plain``): precomputation must only be faster.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app import precomputed
from registry.apply import apply_repo
from registry.config import RepoSettings, load_repo_config
from registry.file_registry import FileRegistry
from stores import codec
from stores.base import WriteRow
from stores.factory import create_online_store
from stores.keys import project_prefix
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.precompute_build import precompute
from stores.timestamps import now_us
from tests.app.conftest import serve
from tests.app.precompute_repo import SERVICES, VIEWS, write_precompute_repo
from tests.support import write_parquet

URL = "/get-online-features"
DRIVERS = [1001, 1002, 1003, 1004, 9999, 1001]


async def with_store(settings: RepoSettings, work: Any) -> Any:
    store = create_online_store(settings)
    await store.start()
    try:
        return await work(store)
    finally:
        await store.close()


async def build(root: Path, online_store: dict[str, object], *, built: bool = True) -> Path:
    write_precompute_repo(root, online_store)
    settings = load_repo_config(root)
    await apply_repo(settings)
    registry = FileRegistry(settings.registry_path)
    offline = FileOfflineStore(root)

    async def fill(store: Any) -> None:
        await materialize(registry, offline, store, None, now_us(), 0)
        if built:
            await precompute(registry, store, ["pre", "pre_clash"])

    await with_store(settings, fill)
    return root


@pytest.fixture
async def repo(tmp_path: Path, online_store_config: dict[str, object]) -> Path:
    return await build(tmp_path / "repo", online_store_config)


@pytest.fixture
async def client(repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(repo, registry_ttl_sec=0.05):
        yield c


async def same(
    client: httpx.AsyncClient,
    drivers: list[int] = DRIVERS,
    services: tuple[str, str] = ("pre", "plain"),
    **options: Any,
) -> Any:
    """Read both services; the answers must be identical. Returns the JSON."""
    answers = [
        await client.post(
            URL, json={"entities": {"driver_id": drivers}, "feature_service": name, **options}
        )
        for name in services
    ]
    assert answers[0].status_code == answers[1].status_code, answers[0].text
    assert answers[0].content == answers[1].content
    return answers[0].json()


def column(body: Any, name: str) -> Any:
    return body["results"][body["metadata"]["feature_names"].index(name)]


async def test_precomputed_reads_equal_per_view_reads(client: httpx.AsyncClient) -> None:
    body = await same(client)
    assert body["metadata"]["feature_names"][:4] == ["driver_id", "trips", "conv_rate", "note"]
    for full_names in (True, False):
        for metadata in (True, False):
            await same(
                client,
                full_feature_names=full_names,
                include_feature_view_version_metadata=metadata,
            )
    for drivers in ([1001], [9999], [1002, 1002, 9999, 1003], list(range(990, 1010))):
        await same(client, drivers)

    # The statuses, spelled out: NOT_FOUND for a missing entity among found ones, per-view
    # OUTSIDE_MAX_AGE with the view's timestamp, NULL_VALUE, and a view without a record.
    assert column(body, "trips")["statuses"] == ["PRESENT"] * 4 + ["NOT_FOUND", "PRESENT"]
    assert column(body, "trips")["event_timestamps"][4] == "1970-01-01T00:00:00Z"
    assert column(body, "clicks")["statuses"] == [
        "PRESENT", "OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND", "NOT_FOUND", "PRESENT",
    ]  # fmt: skip
    assert column(body, "clicks")["values"][1] is None
    assert column(body, "clicks")["event_timestamps"][1] != "1970-01-01T00:00:00Z"
    assert column(body, "conv_rate")["statuses"][1] == "NULL_VALUE"
    assert column(body, "conv_rate")["values"][2] == "NaN"
    assert column(body, "rating")["statuses"][2] == "NOT_FOUND"  # 1003 has no profile
    assert column(body, "rating")["values"] == [4.5, 3.9, None, "NaN", None, 4.5]
    assert column(body, "joined")["values"][0] == "2024-01-02T03:04:05.123Z"
    assert column(body, "scores")["values"][0] == [1.5, "Infinity"]
    assert column(body, "avatar")["values"][0] == "AQI="
    assert column(body, "doubled")["statuses"][0] == "NOT_FOUND"  # computed on push only


async def test_name_collisions_answer_as_the_per_view_read(client: httpx.AsyncClient) -> None:
    services = ("pre_clash", "plain_clash")
    body = await same(client, services=services)
    assert body["detail"][0]["type"] == "name_collision"
    body = await same(client, services=services, full_feature_names=True)
    assert body["metadata"]["feature_names"] == ["driver_id", "stats__trips", "recent__trips"]


async def test_bad_requests_answer_as_the_per_view_read(client: httpx.AsyncClient) -> None:
    for entities in ({"customer_id": [1]}, {"driver_id": ["x"]}, {"driver_id": []}):
        answers = [
            await client.post(URL, json={"entities": entities, "feature_service": name})
            for name in ("pre", "plain")
        ]
        assert answers[0].status_code == answers[1].status_code == 422
        assert answers[0].content == answers[1].content


async def test_writes_keep_the_vectors_current(client: httpx.AsyncClient, repo: Path) -> None:
    pushed = {
        "driver_id": [1001, 1005],
        "event_timestamp": ["2100-01-01T00:00:00Z"] * 2,
        "conv_rate": [0.75, 0.25],
        "trips": [11, 12],
        "note": ["pushed", None],
    }
    response = await client.post("/push", json={"push_source_name": "stats_push", "df": pushed})
    assert response.status_code == 200
    body = await same(client, [1001, 1005, 1002])
    assert column(body, "trips")["values"] == [11, 12, 102]
    # A stored on-demand view: 1005's row lacks an input (note), so its output is null.
    assert column(body, "doubled")["values"][:2] == [1.5, None]
    assert column(body, "note")["statuses"] == ["PRESENT", "NULL_VALUE", "PRESENT"]

    # An older row changes neither the view nor the vector.
    older = {**pushed, "event_timestamp": ["2000-01-01T00:00:00Z"] * 2, "trips": [0, 0]}
    await client.post("/push", json={"push_source_name": "stats_push", "df": older})
    assert column(await same(client, [1001, 1005]), "trips")["values"] == [11, 12]

    written = {
        "driver_id": [1003],
        "ts": ["2100-01-01T00:00:00Z"],
        "rating": [1.25],
        "vehicle": ["van"],
        "certified": [True],
        "scores": [[0.5]],
        "joined": ["2025-06-01T00:00:00Z"],
        "attrs": [{"k": "v"}],
        "avatar": ["AQI="],
        "config": ['{"y": 2}'],
    }
    response = await client.post(
        "/write-to-online-store", json={"feature_view_name": "profile", "df": written}
    )
    assert response.status_code == 200
    body = await same(client, [1003])
    assert column(body, "rating")["values"] == [1.25]
    assert column(body, "attrs")["values"] == [{"k": "v"}]

    # Materialization updates vectors too: a fresh recent row for 1002 and 1004.
    write_parquet(
        repo / "data/recent.parquet",
        "SELECT * FROM (VALUES (1002::BIGINT, 60::BIGINT, 1::BIGINT, now()),"
        " (1004, 70, 1, now())) AS t(driver_id, clicks, trips, ts)",
    )
    settings = load_repo_config(repo)

    async def run(store: Any) -> None:
        registry = FileRegistry(settings.registry_path)
        await materialize(registry, FileOfflineStore(repo), store, ["recent"], now_us(), 0)

    await with_store(settings, run)
    body = await same(client, [1002, 1004])
    assert column(body, "clicks")["values"] == [60, 70]
    await same(client)


async def test_complete_fresh_rows_read_in_one_pass(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entities whose every run is fresh and complete take the one-decode path; with
    duplicates, a stale run and a missing entity mixed in, the row-by-row path."""
    drivers = [2001, 2002, 2003]
    fresh = "2100-01-01T00:00:00Z"
    stats_rows = {
        "driver_id": drivers,
        "event_timestamp": [fresh] * 3,
        "conv_rate": [0.5, 0.25, 2.0],
        "trips": [1, 2, 3],
        "note": ["a", "b", "c"],
    }
    profile_rows = {
        "driver_id": drivers,
        "ts": [fresh] * 3,
        "rating": [1.5, 2.5, 3.5],
        "vehicle": ["van", "car", "bus"],
        "certified": [True, False, True],
        "scores": [[0.5], [], [1.0, 2.0]],
        "joined": ["2025-06-01T00:00:00Z", "2025-06-02T00:00:00.5Z", "2025-06-03T00:00:00Z"],
        "attrs": [{"k": "v"}, {}, {"n": 1}],
        "avatar": ["AQI=", "AA==", "AQ=="],
        "config": ['{"y": 2}', "[]", "1"],
    }
    recent_rows = {"driver_id": drivers, "ts": [fresh] * 3, "clicks": [7, 8, 9], "trips": [0] * 3}
    assert (
        await client.post("/push", json={"push_source_name": "stats_push", "df": stats_rows})
    ).status_code == 200
    for view, rows in (("profile", profile_rows), ("recent", recent_rows)):
        response = await client.post(
            "/write-to-online-store", json={"feature_view_name": view, "df": rows}
        )
        assert response.status_code == 200
    one_by_one: list[object] = []
    entity_row = precomputed._entity_row

    def counted(*args: Any) -> Any:
        one_by_one.append(args)
        return entity_row(*args)

    monkeypatch.setattr(precomputed, "_entity_row", counted)
    body = await same(client, [2003, 2001, 2002, 2001])
    assert one_by_one == []
    assert column(body, "trips")["values"] == [3, 1, 2, 1]
    assert column(body, "clicks")["values"] == [9, 7, 8, 7]
    assert column(body, "scores")["values"] == [[1.0, 2.0], [0.5], [], [0.5]]
    assert column(body, "joined")["values"][2] == "2025-06-02T00:00:00.500Z"
    assert column(body, "doubled")["values"] == [4.0, 1.0, 0.5, 1.0]
    assert {s for r in body["results"] for s in r["statuses"]} == {"PRESENT"}
    body = await same(client, [2002, 9999, 1002, 2002])  # missing, stale, nulls: row by row
    assert len(one_by_one) == 3
    assert column(body, "clicks")["statuses"] == [
        "PRESENT",
        "NOT_FOUND",
        "OUTSIDE_MAX_AGE",
        "PRESENT",
    ]
    await same(client, [2001], full_feature_names=True)


async def wait_for(client: httpx.AsyncClient, status: int) -> httpx.Response:
    request = {"entities": {"driver_id": DRIVERS}, "feature_service": "pre"}
    for _ in range(200):
        response = await client.post(URL, json=request)
        if response.status_code == status:
            return response
        await asyncio.sleep(0.02)
    raise AssertionError(f"still {response.status_code}: {response.text}")


async def test_a_service_is_served_once_built(
    tmp_path: Path, online_store_config: dict[str, object]
) -> None:
    root = await build(tmp_path / "repo", online_store_config, built=False)
    settings = load_repo_config(root)
    registry = FileRegistry(settings.registry_path)
    async for client in serve(root, registry_ttl_sec=0.05):
        response = await client.post(
            URL, json={"entities": {"driver_id": [1001]}, "feature_service": "pre"}
        )
        assert response.status_code == 503
        assert response.json()["detail"] == [
            {
                "type": "precompute_stale",
                "loc": ["body", "feature_service"],
                "msg": "feature service 'pre': its precomputed vectors were never built; "
                "run `ladle precompute pre` to rebuild its precomputed vectors",
                "input": "pre",
            }
        ]
        await with_store(settings, lambda store: precompute(registry, store, ["pre"]))
        await wait_for(client, 200)
        await same(client)


async def test_a_changed_definition_needs_a_rebuild(client: httpx.AsyncClient, repo: Path) -> None:
    await same(client)
    changed = SERVICES.replace('stats[["trips", "conv_rate", "note"]]', 'stats[["trips"]]')
    (repo / "features.py").write_text(VIEWS + changed)
    settings = load_repo_config(repo)
    report = await apply_repo(settings)
    assert report.needs_precompute == ["pre"]
    response = await wait_for(client, 503)
    message = response.json()["detail"][0]["msg"]
    assert "its definition changed since its precomputed vectors were built" in message
    assert "run `ladle precompute pre`" in message

    registry = FileRegistry(settings.registry_path)
    results = await with_store(settings, lambda store: precompute(registry, store, ["pre"]))
    assert (results[0].scanned, results[0].written, results[0].dropped) == (4, 4, 0)
    await wait_for(client, 200)
    body = await same(client)
    assert body["metadata"]["feature_names"][:3] == ["driver_id", "trips", "rating"]


async def test_a_write_from_an_unaware_process_needs_a_rebuild(
    client: httpx.AsyncClient, repo: Path
) -> None:
    """A process on an older registry writes records without updating vectors."""
    settings = load_repo_config(repo)
    key = project_prefix("test_project") + b"driver_id=1001"
    record = codec.encode_record(now_us(), {"clicks": 99, "trips": 1})
    stale = WriteRow(key, "recent", now_us(), record)
    await with_store(settings, lambda store: store.write([stale]))

    response = await client.post(
        URL, json={"entities": {"driver_id": [1002, 1001]}, "feature_service": "pre"}
    )
    assert response.status_code == 503
    assert "no longer matches its records" in response.json()["detail"][0]["msg"]
    await same(client, [1002, 1003])  # other entities are still served

    # A new entity written that way has records but no vector: not NOT_FOUND either.
    new = WriteRow(key.replace(b"1001", b"4242"), "recent", now_us(), record)
    await with_store(settings, lambda store: store.write([new]))
    response = await client.post(
        URL, json={"entities": {"driver_id": [1002, 4242]}, "feature_service": "pre"}
    )
    assert response.status_code == 503
    assert "an entity has records but no precomputed vector" in response.text
    await same(client, [1002, 9999])  # a really missing entity is still NOT_FOUND

    registry = FileRegistry(settings.registry_path)
    await with_store(settings, lambda store: precompute(registry, store, ["pre"]))
    body = await same(client, [*DRIVERS, 4242])
    assert column(body, "clicks")["values"][0] == 99
    assert column(body, "clicks")["values"][-1] == 99


async def test_rebuild_while_writes_happen(
    client: httpx.AsyncClient, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stores.precompute_build.BATCH", 7)  # many small batches
    drivers = list(range(2000, 2200))
    rng = random.Random(3)

    async def push_some() -> None:
        for _ in range(20):
            chosen = rng.sample(drivers, 10)
            df = {
                "driver_id": chosen,
                "event_timestamp": [f"2100-01-01T00:00:{rng.randrange(60):02d}Z" for _ in chosen],
                "conv_rate": [rng.random() for _ in chosen],
                "trips": [rng.randrange(100) for _ in chosen],
                "note": ["n"] * len(chosen),
            }
            response = await client.post("/push", json={"push_source_name": "stats_push", "df": df})
            assert response.status_code == 200
            await asyncio.sleep(0)

    await push_some()  # entities that exist before the rebuild starts
    settings = load_repo_config(repo)
    registry = FileRegistry(settings.registry_path)
    rebuild = with_store(settings, lambda store: precompute(registry, store, ["pre"]))
    await asyncio.gather(rebuild, push_some(), push_some())
    await wait_for(client, 200)
    for start in range(0, len(drivers), 50):
        await same(client, drivers[start : start + 50])
    await same(client)


async def test_metrics_count_the_same_statuses(tmp_path: Path) -> None:
    root = await build(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"})
    config = (root / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(
        config + "feature_server:\n  metrics:\n    enabled: true\n"
    )
    statuses = ("PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE")

    def counts() -> list[float]:
        name = "ladle_online_feature_values_total"
        return [REGISTRY.get_sample_value(name, {"status": s}) or 0.0 for s in statuses]

    async for client in serve(root):
        seen = [counts()]
        for name in ("pre", "plain"):
            body = {"entities": {"driver_id": DRIVERS}, "feature_service": name}
            assert (await client.post(URL, json=body)).status_code == 200
            seen.append(counts())
    by_pre, by_plain = ([b - a for a, b in zip(x, y, strict=True)] for x, y in pairwise(seen))
    assert by_pre == by_plain
    assert all(by_pre)  # every status occurs
