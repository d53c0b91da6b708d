"""Permissions a feature repo declares, with Feast's names, and their stored form.

A permission grants some actions on some resources (chosen by type, name pattern and
tags) to the callers its policy accepts (by the roles or groups in their token)::

    Permission(
        name="ranking-readers",
        types=[FeatureView, OnDemandFeatureView, FeatureService],
        name_patterns=["driver_.*"],
        policy=RoleBasedPolicy(roles=["ranking"]),
        actions=[AuthzedAction.READ_ONLINE],
    )

They only take effect on a server whose ``auth`` is ``oidc``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence

import msgspec

from registry.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
)


class AuthzedAction(enum.Enum):
    """What a request does to a resource."""

    CREATE = "create"
    DESCRIBE = "describe"
    UPDATE = "update"
    DELETE = "delete"
    READ_ONLINE = "read_online"
    READ_OFFLINE = "read_offline"
    WRITE_ONLINE = "write_online"
    WRITE_OFFLINE = "write_offline"
    #: Ladle's own: run /materialize or /materialize-incremental for a feature view.
    MATERIALIZE = "materialize"


ALL_ACTIONS = list(AuthzedAction)
READ = [AuthzedAction.READ_ONLINE, AuthzedAction.READ_OFFLINE]
WRITE = [AuthzedAction.WRITE_ONLINE, AuthzedAction.WRITE_OFFLINE]
#: The actions Ladle's endpoints check; the others are kept for Feast repos.
CHECKED_ACTIONS = frozenset({"read_online", "write_online", "write_offline", "materialize"})

#: Resource kinds by the definition class that declares them.
RESOURCE_KINDS: dict[type, str] = {
    FeatureView: "feature_view",
    OnDemandFeatureView: "on_demand_feature_view",
    FeatureService: "feature_service",
    PushSource: "push_source",
    FileSource: "file_source",
    RequestSource: "request_source",
    Entity: "entity",
}


class RoleBasedPolicy:
    """Grants callers whose token carries at least one of the roles."""

    def __init__(self, roles: Sequence[str]) -> None:
        self.roles = [roles] if isinstance(roles, str) else list(roles)

    def __repr__(self) -> str:
        return f"RoleBasedPolicy(roles={self.roles!r})"


class GroupBasedPolicy:
    """Grants callers whose token lists at least one of the groups."""

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = [groups] if isinstance(groups, str) else list(groups)

    def __repr__(self) -> str:
        return f"GroupBasedPolicy(groups={self.groups!r})"


class AllowAllPolicy:
    """Grants every authenticated caller."""

    def __repr__(self) -> str:
        return "AllowAll"


AllowAll = AllowAllPolicy()
Policy = RoleBasedPolicy | GroupBasedPolicy | AllowAllPolicy


class Permission:
    """Grants ``actions`` on the resources of ``types`` whose name fully matches one of
    ``name_patterns`` (regular expressions; none means every name) and that carry every
    ``required_tags`` entry, to the callers ``policy`` accepts."""

    def __init__(
        self,
        name: str,
        types: type | Sequence[type] | None = None,
        name_patterns: str | Sequence[str] | None = None,
        actions: AuthzedAction | str | Sequence[AuthzedAction | str] = tuple(ALL_ACTIONS),
        policy: Policy | type[AllowAllPolicy] = AllowAll,
        tags: dict[str, str] | None = None,
        required_tags: dict[str, str] | None = None,
        name_pattern: str | None = None,
    ) -> None:
        self.name = name
        self.types: list[object] = [types] if isinstance(types, type | str) else list(types or [])
        patterns = [name_patterns] if isinstance(name_patterns, str) else list(name_patterns or [])
        if name_pattern is not None:  # Feast's older single-pattern argument
            patterns.append(name_pattern)
        self.name_patterns = patterns
        self.actions = list(actions) if isinstance(actions, list | tuple) else [actions]
        self.policy = policy
        self.tags = dict(tags or {})
        self.required_tags = dict(required_tags or {})

    def __repr__(self) -> str:
        return f"Permission(name={self.name!r})"


# ---- stored form ----------------------------------------------------------------------


class RolePolicySpec(msgspec.Struct, frozen=True, tag="roles"):
    roles: list[str]


class GroupPolicySpec(msgspec.Struct, frozen=True, tag="groups"):
    groups: list[str]


class AllowAllPolicySpec(msgspec.Struct, frozen=True, tag="allow_all"):
    pass


PolicySpec = RolePolicySpec | GroupPolicySpec | AllowAllPolicySpec


class PermissionSpec(msgspec.Struct, frozen=True):
    name: str
    #: Resource kinds (values of RESOURCE_KINDS); every kind when declared without types.
    types: list[str]
    #: Regular expressions a resource's whole name must match (any one); empty: any name.
    name_patterns: list[str]
    actions: list[str]
    policy: PolicySpec
    required_tags: dict[str, str] = {}
    tags: dict[str, str] = {}


def compile_permission(
    permission: Permission, fail: Callable[[str], None]
) -> PermissionSpec | None:
    """The stored form, or None after reporting each problem through ``fail``."""
    problems = 0

    def problem(text: str) -> None:
        nonlocal problems
        problems += 1
        fail(text)

    kinds: list[str] = []
    for kind in permission.types:
        if isinstance(kind, type) and kind in RESOURCE_KINDS:
            kinds.append(RESOURCE_KINDS[kind])
        else:
            known = ", ".join(k.__name__ for k in RESOURCE_KINDS)
            problem(f"types: {kind!r} is not a resource type (use {known})")
    for pattern in permission.name_patterns:
        if not isinstance(pattern, str):
            problem(f"name_patterns: {pattern!r} is not a string")
            continue
        try:
            re.compile(pattern.strip())  # checked as it is stored
        except re.error as exc:
            problem(f"name_patterns: {pattern!r} is not a regular expression: {exc}")
    actions: list[str] = []
    for action in permission.actions:
        try:
            actions.append(AuthzedAction(action).value)
        except ValueError:
            known = ", ".join(a.value for a in AuthzedAction)
            problem(f"actions: {action!r} is not an action (use {known})")
    if not permission.actions:
        problem("actions: lists no action")
    policy = _policy_spec(permission.policy, problem)
    for key, value in {**permission.tags, **permission.required_tags}.items():
        if not isinstance(key, str) or not isinstance(value, str):
            problem(f"tags: {key!r}: {value!r} must map strings to strings")
    if problems or policy is None:
        return None
    return PermissionSpec(
        name=permission.name,
        types=sorted(set(kinds)) if kinds else sorted(RESOURCE_KINDS.values()),
        name_patterns=[p.strip() for p in permission.name_patterns],
        actions=list(dict.fromkeys(actions)),
        policy=policy,
        required_tags=permission.required_tags,
        tags=permission.tags,
    )


def _policy_spec(policy: object, problem: Callable[[str], None]) -> PolicySpec | None:
    if policy is AllowAllPolicy or isinstance(policy, AllowAllPolicy):
        return AllowAllPolicySpec()
    spec: PolicySpec
    if isinstance(policy, RoleBasedPolicy):
        names, spec = policy.roles, RolePolicySpec(roles=policy.roles)
    elif isinstance(policy, GroupBasedPolicy):
        names, spec = policy.groups, GroupPolicySpec(groups=policy.groups)
    else:
        problem(
            f"policy: {policy!r} is not a policy (use RoleBasedPolicy, GroupBasedPolicy "
            "or AllowAll)"
        )
        return None
    if not names or not all(isinstance(n, str) and n for n in names):
        problem(f"policy: {policy!r} must name at least one role or group, as strings")
        return None
    return spec
