"""A serving worker picks up a new registry version without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from registry.apply import apply_repo
from registry.config import load_repo_config
from tests.app.conftest import DEFINITIONS, build_repo, serve

URL = "/get-online-features"


async def test_reload_while_serving(tmp_path: Path) -> None:
    root = await build_repo(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"})
    request = {"entities": {"driver_id": [1001]}, "features": ["driver_extra:rating"]}
    async for client in serve(root, registry_ttl_sec=0.05):
        assert (await client.post(URL, json=request)).status_code == 404

        # A new view over existing data appears after `ladle apply`...
        (root / "features.py").write_text(
            DEFINITIONS
            + """
driver_extra = FeatureView(name="driver_extra", entities=[driver],
                           schema=[Field(name="rating", dtype=Float64)], source=profile_source)
"""
        )
        await apply_repo(load_repo_config(root))
        for _ in range(100):
            response = await client.post(URL, json=request)
            if response.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert response.status_code == 200
        # ...it is registered but not materialized yet, so the value is not found.
        assert response.json()["results"][1]["statuses"] == ["NOT_FOUND"]

        # A corrupt registry keeps the last good version serving.
        (root / "data/registry.db").write_text("{not json")
        await asyncio.sleep(0.2)
        assert (await client.post(URL, json=request)).status_code == 200
        assert (await client.get("/health")).status_code == 200
