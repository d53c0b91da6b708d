"""Schemathesis drives every documented operation with generated requests.

The app serves the demo repo (`ladle init`) on the session's redis-server, so the
document's examples reach real data. Every response must be documented, match its
schema, and no request may cause a 5xx.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
import schemathesis
import yaml
from schemathesis import checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi as schemathesis_asgi

from app import create_app
from app.openapi import build_document
from app.scaffold import init_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us
from tests.support import RedisServer, apply_now

REDIS_DB = 3
# The app reads its repo only when its lifespan starts (on the first request), so it can
# be named here and built by the fixture below.
# Only named here (nothing is created until the fixture runs).
REPO = Path(tempfile.gettempdir()) / f"ladle-schemathesis-{uuid.uuid4().hex}" / "demo"
schema = schemathesis.openapi.from_dict(build_document())
schema.app = create_app(REPO)


#: Names the demo repo knows. Schema-valid bodies rarely name real views, so positive
#: cases are steered onto them (keeping their generated values) to reach value handling.
ENTITY_COLUMNS = ["driver_id", "val_to_add", "val_to_add_2"]
FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats_fresh:avg_daily_trips",
    "transformed_conv_rate:conv_rate_plus_val1",
    "driver_hourly_stats:acc_rate",
]
WRITE_COLUMNS = ["driver_id", "event_timestamp", "conv_rate", "acc_rate", "avg_daily_trips"]


def _columns(names: list[str], generated: dict[str, Any]) -> dict[str, list[Any]]:
    """The generated value lists under known names, cut to one length (extra ones kept)."""
    lists = [v for v in generated.values() if isinstance(v, list) and v]
    if not lists:
        return generated
    rows = min(len(v) for v in lists)
    return {(names[i] if i < len(names) else f"extra_{i}"): v[:rows] for i, v in enumerate(lists)}


@schema.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    if (
        case.meta is None
        or case.meta.is_negative_at(ParameterLocation.BODY)
        or not isinstance(body, dict)
    ):
        return case
    path = case.operation.path
    if path == "/get-online-features":
        body["entities"] = _columns(ENTITY_COLUMNS, body["entities"])
        body["features"] = [FEATURES[len(f) % len(FEATURES)] for f in body.get("features", [])]
    elif path == "/push":
        body["push_source_name"] = "driver_stats_push_source"
        body["df"] = _columns(WRITE_COLUMNS, body["df"])
    elif path == "/write-to-online-store":
        body["feature_view_name"] = "driver_hourly_stats"
        body["df"] = _columns(WRITE_COLUMNS, body["df"])
    return case


async def _materialize(root: Path) -> None:
    settings = load_repo_config(root)
    store = create_online_store(settings)
    await store.start()
    try:
        registry = FileRegistry(settings.registry_path)
        await materialize(registry, FileOfflineStore(root), store, None, now_us(), 0)
    finally:
        await store.close()


@pytest.fixture(scope="module", autouse=True)
def demo_repo(redis_server: RedisServer) -> Iterator[Path]:
    init_repo(REPO)
    config = yaml.safe_load((REPO / "feature_store.yaml").read_text())
    config["online_store"] = {
        "type": "redis",
        "connection_string": f"{redis_server.connection_string},db={REDIS_DB}",
    }
    (REPO / "feature_store.yaml").write_text(yaml.safe_dump(config))
    redis.Redis(port=redis_server.port, db=REDIS_DB).flushdb()
    apply_now(REPO)
    asyncio.run(_materialize(REPO))
    try:
        yield REPO
    finally:
        schemathesis_asgi.shutdown_lifespans()
        shutil.rmtree(REPO.parent, ignore_errors=True)


#: Not positive_data_acceptance: a schema cannot say that all `df` columns have one
#: length or that a view exists, and the app rightly answers such requests with a 4xx.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


@schema.parametrize()
@hypothesis.settings(max_examples=60, deadline=None)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
