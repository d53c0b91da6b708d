"""Ladle's responses have the shape of Feast 0.67's, request for request.

The requests and raw responses come from ../shared/feast-reference/wire, captured from a
real `feast serve`. Ladle serves the `ladle init` demo, which has the same view and ids.
Where Feast is wrong (a 500 for a client's mistake, PRESENT for a missing entity, a random
feature order) Ladle differs on purpose, and the test says so.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.scaffold import init_repo
from registry.apply import apply_repo
from registry.config import load_repo_config
from registry.file_registry import FileRegistry
from stores.factory import create_online_store
from stores.materialize import materialize
from stores.offline import FileOfflineStore
from stores.timestamps import now_us
from tests.app.conftest import serve

WIRE = Path(__file__).resolve().parents[2].parent / "shared" / "feast-reference" / "wire"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

SUCCESS = [
    "gof_features",
    "gof_single_row",
    "gof_full_feature_names",
    "gof_duplicate_ids",
    "gof_entity_id_as_string",
    "gof_include_version_metadata",
    "gof_unknown_entity_id",
    "gof_odfv_features",
    "gof_feature_service_v1",
]
CLIENT_MISTAKES = [
    "gof_empty_body",
    "gof_empty_entity_list",
    "gof_empty_features",
    "gof_feature_ref_without_colon",
    "gof_malformed_json",
    "gof_mismatched_entity_lengths",
    "gof_missing_entities_field",
    "gof_unknown_entity_key_name",
    "gof_unknown_feature_name",
    "gof_unknown_feature_service",
    "gof_unknown_feature_view",
    "gof_wrong_type_entities",
    "gof_wrong_method_GET",
    "gof_feature_service_v1_no_request_data",
]


class Capture:
    def __init__(self, name: str) -> None:
        text = (WIRE / f"{name}.txt").read_text()
        request = text.split("### REQUEST\n", 1)[1].split("\n### RESPONSE", 1)[0]
        head, _, body = request.partition("\n\n")
        self.method, self.path = head.splitlines()[0].split()[:2]
        self.content_type = next(
            (
                line.split(":", 1)[1].strip()
                for line in head.splitlines()
                if line.lower().startswith("content-type")
            ),
            None,
        )
        self.body = body.strip().encode()
        raw = text.split("### RESPONSE (curl -i, raw)\n", 1)[1].split("\n### RESPONSE BODY", 1)[0]
        status_line, _, rest = raw.partition("\n")
        self.status = int(status_line.split()[1])
        self.response_body = rest.partition("\n\n")[2].strip()

    def json(self) -> object:
        return json.loads(self.response_body)


async def _demo(root: Path) -> Path:
    init_repo(root)
    settings = load_repo_config(root)
    await apply_repo(settings)
    store = create_online_store(settings)
    await store.start()
    try:
        await materialize(
            FileRegistry(settings.registry_path), FileOfflineStore(root), store, None, now_us()
        )
    finally:
        await store.close()
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asyncio.run(_demo(tmp_path_factory.mktemp("wire") / "demo"))


@pytest.fixture
async def client(demo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(demo):
        yield c


async def send(client: httpx.AsyncClient, capture: Capture) -> httpx.Response:
    headers = {"content-type": capture.content_type} if capture.content_type else {}
    return await client.request(capture.method, capture.path, content=capture.body, headers=headers)


def kind(value: object) -> str:
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else type(value).__name__
    )


@pytest.mark.parametrize("name", SUCCESS)
async def test_success_shape_matches_feast(client: httpx.AsyncClient, name: str) -> None:
    capture = Capture(name)
    response = await send(client, capture)
    assert response.status_code == capture.status == 200
    assert response.headers["content-type"] == "application/json"
    ours, theirs = response.json(), capture.json()
    assert isinstance(theirs, dict)
    assert list(ours) == list(theirs) == ["results", "metadata"]
    assert list(ours["metadata"]) == list(theirs["metadata"])
    # Same columns; Ladle keeps the request order where Feast shuffles per process.
    requested = json.loads(capture.body)
    names = theirs["metadata"]["feature_names"]
    assert sorted(ours["metadata"]["feature_names"]) == sorted(names)
    if "features" in requested:
        suffixes = [f.split(":")[1] for f in requested["features"]]
        assert [n.split("__")[-1] for n in ours["metadata"]["feature_names"][1:]] == suffixes
    for name_, column in zip(ours["metadata"]["feature_names"], ours["results"], strict=True):
        feast_column = theirs["results"][names.index(name_)]
        assert list(column) == list(feast_column) == ["values", "statuses", "event_timestamps"]
        assert len(column["values"]) == len(feast_column["values"])
        for ts in column["event_timestamps"]:
            assert TIMESTAMP.match(ts)
        for mine, feast, status in zip(
            column["values"], feast_column["values"], column["statuses"], strict=True
        ):
            if status == "NOT_FOUND":  # Feast says PRESENT with a null value here
                assert mine is None and feast is None
            else:
                assert kind(mine) == kind(feast)
    assert ours["results"][0]["event_timestamps"][0] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("name", CLIENT_MISTAKES)
async def test_client_mistakes_are_4xx_with_json(client: httpx.AsyncClient, name: str) -> None:
    capture = Capture(name)
    response = await send(client, capture)
    assert 400 <= response.status_code < 500, response.text
    # Feast says 404 for missing request data; it is a malformed request, so Ladle says 422.
    if 400 <= capture.status < 500 and name != "gof_feature_service_v1_no_request_data":
        assert response.status_code == capture.status  # Feast got these right
    body = response.json()
    assert "detail" in body
    if isinstance(body["detail"], list):
        assert all({"type", "loc", "msg"} <= set(d) for d in body["detail"])
