"""Find the repo's transformation functions for the on-demand views in a registry.

Servers import the repo's Python files (as ``ladle apply`` does) and check that each
function still has the source that was applied; a changed function is refused, so a
server never runs code other than what the registry describes.
"""

from __future__ import annotations

from pathlib import Path

from app.on_demand import Transformation
from registry.definitions import OnDemandFeatureView
from registry.model import RegistrySnapshot
from registry.on_demand import code_hash
from registry.repo import RepoError, load_definitions


class TransformationsUnavailable(Exception):
    """The registry's on-demand views cannot be matched with the repo's code."""


def load_transformations(root: Path, snapshot: RegistrySnapshot) -> dict[str, Transformation]:
    specs = snapshot.on_demand_feature_views
    if not specs:
        return {}
    try:
        objects = load_definitions(root)
    except RepoError as exc:
        raise TransformationsUnavailable(str(exc)) from None
    found = {obj.name: obj for obj, _ in objects if isinstance(obj, OnDemandFeatureView)}
    loaded: dict[str, Transformation] = {}
    for name, spec in specs.items():
        odfv = found.get(name)
        if odfv is None:
            raise TransformationsUnavailable(
                f"on-demand feature view {name!r} is in the registry but not in the repo's "
                f"files under {root}; run `ladle apply`"
            )
        if code_hash(odfv) != spec.code_hash:
            raise TransformationsUnavailable(
                f"the transformation of on-demand feature view {name!r} changed since "
                "`ladle apply`; run `ladle apply` again"
            )
        loaded[name] = odfv.udf
    return loaded
