"""Schemathesis drives every documented operation with generated requests.

The app serves the demo repo (`ladle init`) on the session's redis-server, so the
document's examples reach real data. Every response must be documented, match its
schema, and no request may cause a 5xx.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import redis
import schemathesis
import yaml
from schemathesis import checks
from schemathesis.python import asgi as schemathesis_asgi

from app import create_app
from app.openapi import build_document
from app.scaffold import init_repo
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us
from tests.support import RedisServer

REDIS_DB = 3
# The app reads its repo only when its lifespan starts (on the first request), so it can
# be named here and built by the fixture below.
REPO = Path(tempfile.mkdtemp(prefix="ladle-schemathesis-")) / "demo"
schema = schemathesis.openapi.from_dict(build_document())
schema.app = create_app(REPO)


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
    apply_repo(load_repo_config(REPO))
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
@hypothesis.settings(max_examples=100, deadline=None)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
