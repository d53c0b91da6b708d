"""Objects a repo's ``static_artifacts.py`` loads once per worker, for transformations.

``load_artifacts(app)`` runs at server startup. It may keep what it loads (a lookup table,
a small model) on ``app.state``, as in Feast, and in this dict, which on-demand feature
views can import (``from registry import artifacts``). The dict outlives registry
reloads, which re-import the repo's modules.
"""

from __future__ import annotations

from typing import Any

artifacts: dict[str, Any] = {}
