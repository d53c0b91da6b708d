"""A started app freezes what start-up built and raises the young-generation threshold;
stopping it gives both back (tests and embedding programs outlive the app)."""

from __future__ import annotations

import gc
from pathlib import Path

from app import gc_tuning
from tests.app.sync_app import SyncApp
from tests.registry.repos import BASE, make_repo
from tests.support import apply_now

DEFINITIONS = (
    BASE
    + """
stats_view = FeatureView(name="stats_view", entities=[driver], source=stats,
                         schema=[Field(name="trips", dtype=Int64)])
"""
)


def test_serving_tunes_and_restores_the_collector(tmp_path: Path) -> None:
    settings = make_repo(tmp_path, DEFINITIONS)
    apply_now(settings.root)
    before = gc.get_threshold()
    gc.unfreeze()
    with SyncApp(settings.root):
        assert gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
