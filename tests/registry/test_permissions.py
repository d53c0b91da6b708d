"""Permission definitions: compiled, checked and stored by ``ladle apply``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from registry.apply import ApplyReport, apply_repo
from registry.config import RepoSettings
from registry.file_registry import FileRegistry
from registry.permissions import (
    AllowAllPolicySpec,
    GroupPolicySpec,
    PermissionSpec,
    RolePolicySpec,
)
from tests.registry.repos import BASE, apply_error, make_repo

REPO = (
    BASE
    + """
from registry import (ALL_ACTIONS, READ, AllowAll, AuthzedAction, FeatureService,
                      GroupBasedPolicy, OnDemandFeatureView, Permission, RoleBasedPolicy)

stats_view = FeatureView(name="driver_stats", entities=[driver], source=stats,
                         schema=[Field(name="trips", dtype=Int64)])
"""
)


def test_permissions_are_stored_with_feast_defaults(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        REPO
        + """
readers = Permission(
    name="readers", types=[FeatureView, FeatureService], name_patterns=["driver_.*", "x"],
    policy=RoleBasedPolicy(roles=["reader"]), actions=[AuthzedAction.DESCRIBE, *READ],
    required_tags={"team": "ranking"})
writers = Permission(name="writers", types=PushSource, name_pattern="stats.*",
                     policy=GroupBasedPolicy(groups="ingest"), actions="write_online")
everyone = Permission(name="everyone")
""",
    )
    report = apply_settings(settings)
    assert {"permission readers", "permission writers", "permission everyone"} <= set(
        report.created
    )
    stored = FileRegistry(settings.registry_path).read().permissions
    assert stored["readers"] == PermissionSpec(
        name="readers",
        types=["feature_service", "feature_view"],
        name_patterns=["driver_.*", "x"],
        actions=["describe", "read_online", "read_offline"],
        policy=RolePolicySpec(roles=["reader"]),
        required_tags={"team": "ranking"},
    )
    assert stored["writers"] == PermissionSpec(
        name="writers",
        types=["push_source"],
        name_patterns=["stats.*"],
        actions=["write_online"],
        policy=GroupPolicySpec(groups=["ingest"]),
    )
    everyone = stored["everyone"]
    assert everyone.policy == AllowAllPolicySpec()
    assert "materialize" in everyone.actions and len(everyone.actions) == 9
    assert "on_demand_feature_view" in everyone.types and everyone.name_patterns == []


def test_changed_and_removed_permissions_are_reported(tmp_path: Path) -> None:
    definitions = REPO + 'p = Permission(name="p", policy=RoleBasedPolicy(roles=["a"]))\n'
    settings = make_repo(tmp_path, definitions)
    apply_settings(settings)
    (tmp_path / "features.py").write_text(definitions.replace('["a"]', '["b"]'))
    assert apply_settings(settings).updated == ["permission p"]
    (tmp_path / "features.py").write_text(REPO)
    report = apply_settings(settings)
    assert report.deleted == ["permission p"]
    assert FileRegistry(settings.registry_path).read().permissions == {}


def test_bad_permissions_are_reported_each(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        REPO
        + """
bad_pattern = Permission(name="bad_pattern", name_patterns=["driver_("])
bad_type = Permission(name="bad_type", types=[str])
bad_action = Permission(name="bad_action", actions=["read_everything"])
no_action = Permission(name="no_action", actions=[])
bad_policy = Permission(name="bad_policy", policy="admins")
empty_roles = Permission(name="empty_roles", policy=RoleBasedPolicy(roles=[]))
twice = Permission(name="twice")
twice_again = Permission(name="twice")
""",
    )
    message = apply_error(settings)
    assert "permission 'bad_pattern' (features.py): name_patterns: 'driver_(' is not a " in message
    assert "permission 'bad_type' (features.py): types: <class 'str'> is not a resource type" in (
        message
    )
    assert "actions: 'read_everything' is not an action" in message
    assert "permission 'no_action' (features.py): actions: lists no action" in message
    assert "permission 'bad_policy' (features.py): policy: 'admins' is not a policy" in message
    assert "permission 'empty_roles' (features.py): policy: RoleBasedPolicy(roles=[]) must" in (
        message
    )
    assert "permission 'twice' (features.py): duplicate name" in message


def test_allow_all_class_or_instance(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        REPO
        + """
from registry.permissions import AllowAllPolicy
a = Permission(name="a", policy=AllowAll)
b = Permission(name="b", policy=AllowAllPolicy)
""",
    )
    stored = apply_settings(settings).snapshot.permissions
    assert stored["a"].policy == stored["b"].policy == AllowAllPolicySpec()


def apply_settings(settings: RepoSettings) -> ApplyReport:
    return asyncio.run(apply_repo(settings))
