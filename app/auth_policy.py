"""Authorization: may this caller do this action on these resources?

The rules, which follow Feast's permission enforcement:

- With no permission in the registry, every authenticated caller may do everything.
- Otherwise each resource a request touches is checked on its own. The permissions that
  *match* it are those naming the action, the resource's type, a pattern its whole name
  matches (or no pattern) and tags it carries. It is allowed when one of them grants the
  caller (affirmative: a role or group in common, or AllowAll).
- A resource that no permission matches is refused. (Feast's documentation says such a
  resource is open to all, but its enforcement refuses it; refusing is the safe reading.)

Decisions are cached per registry snapshot by (the caller's roles and groups, the action,
the request's resources), so a repeated request costs a dictionary lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.auth_tokens import Principal
from app.resolve import ReadPlan
from registry.model import PushSourceSpec, RegistrySnapshot
from registry.permissions import (
    AllowAllPolicySpec,
    GroupPolicySpec,
    PermissionSpec,
    RolePolicySpec,
)

_LABELS = {
    "feature_view": "feature view",
    "on_demand_feature_view": "on-demand feature view",
    "feature_service": "feature service",
    "push_source": "push source",
}


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    name: str
    tags: Mapping[str, str]

    def describe(self) -> str:
        return f"{_LABELS.get(self.kind, self.kind)} {self.name!r}"


class _Rule:
    """A permission prepared for matching."""

    def __init__(self, spec: PermissionSpec) -> None:
        self.name = spec.name
        self.kinds = frozenset(spec.types)
        self.actions = frozenset(spec.actions)
        self.patterns = [re.compile(p) for p in spec.name_patterns]
        self.required_tags = dict(spec.required_tags)
        self.policy = spec.policy

    def matches(self, action: str, resource: Resource) -> bool:
        if action not in self.actions or resource.kind not in self.kinds:
            return False
        if self.patterns and not any(p.fullmatch(resource.name) for p in self.patterns):
            return False
        return all(resource.tags.get(k) == v for k, v in self.required_tags.items())

    def grants(self, principal: Principal) -> bool:
        policy = self.policy
        if isinstance(policy, AllowAllPolicySpec):
            return True
        if isinstance(policy, RolePolicySpec):
            return not principal.roles.isdisjoint(policy.roles)
        assert isinstance(policy, GroupPolicySpec)
        return not principal.groups.isdisjoint(policy.groups)

    def requirement(self) -> str:
        policy = self.policy
        if isinstance(policy, RolePolicySpec):
            return f"permission {self.name!r} needs one of the roles {policy.roles}"
        if isinstance(policy, GroupPolicySpec):
            return f"permission {self.name!r} needs one of the groups {policy.groups}"
        return f"permission {self.name!r}"


def refusal(rules: list[_Rule], principal: Principal, action: str, resource: Resource) -> str:
    """Why ``principal`` may not do ``action`` on ``resource``; "" when it may."""
    matching = [rule for rule in rules if rule.matches(action, resource)]
    if not matching:
        return f"no permission grants {action} on {resource.describe()}"
    if any(rule.grants(principal) for rule in matching):
        return ""
    needs = "; ".join(rule.requirement() for rule in matching)
    return f"this token may not {action} {resource.describe()} ({needs})"


#: A request's resources, found from its key in the snapshot on a cache miss.
Resolver = Callable[[RegistrySnapshot, Any], list[Resource]]
DecisionKey = tuple[tuple[frozenset[str], frozenset[str]], str, object]


class Authorizer:
    def __init__(self, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self._snapshot: RegistrySnapshot | None = None
        self._rules: list[_Rule] = []
        self._decisions: dict[DecisionKey, str] = {}
        #: id(plan) -> (plan, its views); holding the plan keeps its id unique.
        self._plans: dict[int, tuple[ReadPlan, tuple[str, ...]]] = {}

    def _sync(self, snapshot: RegistrySnapshot) -> None:
        """Forget every decision when the registry changes (resources or permissions)."""
        self._snapshot = snapshot
        self._rules = [_Rule(spec) for spec in snapshot.permissions.values()]
        self._decisions = {}
        self._plans = {}

    def refusal(
        self,
        snapshot: RegistrySnapshot,
        principal: Principal,
        action: str,
        request_key: object,
        resolve: Resolver,
    ) -> str:
        """Why the request is refused; "" when it is allowed."""
        if snapshot is not self._snapshot:
            self._sync(snapshot)
        if not self._rules:
            return ""
        key: DecisionKey = (principal.key, action, request_key)
        decision = self._decisions.get(key)
        if decision is None:
            decision = ""
            for resource in resolve(snapshot, request_key):
                decision = refusal(self._rules, principal, action, resource)
                if decision:
                    break
            if len(self._decisions) >= self.max_entries:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def plan_views(self, snapshot: RegistrySnapshot, plan: ReadPlan) -> tuple[str, ...]:
        """The views a plan reads (stored ones, then computed ones), found once per plan."""
        if snapshot is not self._snapshot:
            self._sync(snapshot)
        known = self._plans.get(id(plan))
        if known is not None and known[0] is plan:
            return known[1]
        names = tuple(name for group in plan.groups for name in group.view_names)
        key = names + tuple(step.name for step in plan.transforms)
        if len(self._plans) >= self.max_entries:
            self._plans.clear()
        self._plans[id(plan)] = (plan, key)
        return key


# ---- the resources of each endpoint ---------------------------------------------------


def view_resource(snapshot: RegistrySnapshot, name: str) -> Resource:
    view = snapshot.feature_views.get(name)
    if view is not None:
        return Resource("feature_view", name, view.tags)
    odfv = snapshot.on_demand_feature_views[name]
    return Resource("on_demand_feature_view", name, odfv.tags)


def read_resources(snapshot: RegistrySnapshot, key: Any) -> list[Resource]:
    """Key ("read", service or None, view names)."""
    _, service, views = key
    found = [view_resource(snapshot, name) for name in views]
    if service is not None:
        tags = snapshot.feature_services[service].tags
        found.insert(0, Resource("feature_service", service, tags))
    return found


def _with_stored_odfvs(snapshot: RegistrySnapshot, views: list[str]) -> list[Resource]:
    """The views a write lands in, with the on-demand views computed and stored from them."""
    written = set(views)
    odfvs = [
        spec.name
        for spec in snapshot.on_demand_feature_views.values()
        if spec.write_to_online_store and written & {p.view for p in spec.sources}
    ]
    return [view_resource(snapshot, name) for name in [*views, *odfvs]]


def _pushed_views(snapshot: RegistrySnapshot, source: str) -> list[str]:
    return [
        v.name
        for v in snapshot.feature_views.values()
        if isinstance(v.source, PushSourceSpec) and v.source.name == source
    ]


def push_online_resources(snapshot: RegistrySnapshot, key: Any) -> list[Resource]:
    """Key ("push", source): the source, its views and the on-demand views stored from them."""
    views = _pushed_views(snapshot, key[1])
    return [Resource("push_source", key[1], {}), *_with_stored_odfvs(snapshot, views)]


def push_offline_resources(snapshot: RegistrySnapshot, key: Any) -> list[Resource]:
    """Key ("push", source): the source and the views it feeds."""
    views = _pushed_views(snapshot, key[1])
    return [Resource("push_source", key[1], {})] + [view_resource(snapshot, v) for v in views]


def view_write_resources(snapshot: RegistrySnapshot, key: Any) -> list[Resource]:
    """Key ("view", name): the view and the on-demand views stored from it."""
    return _with_stored_odfvs(snapshot, [key[1]])


def materialize_resources(snapshot: RegistrySnapshot, key: Any) -> list[Resource]:
    """Key ("materialize", view names)."""
    return [view_resource(snapshot, name) for name in key[1]]
