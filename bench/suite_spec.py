"""What the benchmark suite serves and asks for. Extend the suite here.

``bench/suite.sh``, ``bench/profile.sh`` and ``bench/soak.sh`` all read this module:

- the dataset (``bench/suite_data.py`` writes it): one entity, ``VIEWS`` (three feature
  views of ten features each, one feature of each ``KINDS`` type, all keyed by the same
  entity) and ``SERVICES`` (feature services over those views);
- ``SCENARIOS``: the request shapes measured for every rows x connections pair. The
  floor (``bench/floor_app.py``: an endpoint that only decodes the body) is one of them.

Adding the precomputed feature-service scenario takes one entry in each list::

    SERVICES = (
        Service("bench_service"),
        Service("bench_service_precomputed", options={"precompute_online": True}),
    )
    SCENARIOS = (
        ...,
        Scenario("service_precomputed", service="bench_service_precomputed"),
    )

``options`` are passed as keyword arguments to ``FeatureService`` in the generated
``features.py``; every service spans all views unless ``views`` names some.

Run it to see the plan as the shell scripts read it::

    python bench/suite_spec.py plan --rows "1 10 100" --conns "1 16"
    python bench/suite_spec.py features
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

ENTITY = "user"
JOIN_KEY = "user_id"
#: Entity ids are ID_START .. ID_START + entities - 1.
ID_START = 1
ENTITIES = 100_000


@dataclass(frozen=True)
class Kind:
    """One feature type: its suffix, registry type and a DuckDB expression for a value.

    In ``sql``, ``d`` is the entity id, ``{s}`` the view's seed and ``t0`` the generation
    time; values are hashes of (id, seed), so every run writes the same data.
    """

    suffix: str
    dtype: str
    sql: str


KINDS: tuple[Kind, ...] = (
    Kind("int64", "Int64", "(hash(d, {s}, 1) % 1000000)::BIGINT"),
    Kind("int32", "Int32", "(hash(d, {s}, 2) % 1000)::INTEGER"),
    Kind("float64", "Float64", "(hash(d, {s}, 3) % 1000000) / 1000000.0"),
    Kind("float32", "Float32", "((hash(d, {s}, 4) % 1000) / 1000.0)::FLOAT"),
    Kind("string", "String", "printf('segment-%06d', (hash(d, {s}, 5) % 1000000)::BIGINT)"),
    Kind("bool", "Bool", "hash(d, {s}, 6) % 2 = 0"),
    Kind("timestamp", "UnixTimestamp", "t0 - to_seconds((hash(d, {s}, 7) % 86400)::BIGINT)"),
    Kind(
        "int64_list",
        "Array(Int64)",
        "list_transform(range(5), lambda i: (hash(d, {s}, 8, i) % 1000)::BIGINT)",
    ),
    Kind(
        "float64_list",
        "Array(Float64)",
        "list_transform(range(5), lambda i: (hash(d, {s}, 9, i) % 1000) / 1000.0)",
    ),
    Kind(
        "string_list",
        "Array(String)",
        "list_transform(range(3), lambda i: 'tag-' || (hash(d, {s}, 10, i) % 100)::VARCHAR)",
    ),
)


@dataclass(frozen=True)
class View:
    """A feature view with one feature per kind, named ``<prefix>_<kind suffix>``."""

    name: str
    prefix: str
    #: Also declare a PushSource feeding this view (bench/soak.sh pushes to it).
    push_source: str = ""

    @property
    def features(self) -> list[tuple[str, Kind]]:
        return [(f"{self.prefix}_{kind.suffix}", kind) for kind in KINDS]

    def refs(self) -> list[str]:
        return [f"{self.name}:{name}" for name, _ in self.features]


VIEWS: tuple[View, ...] = (
    View("user_activity", "activity", push_source="user_activity_push"),
    View("user_profile", "profile"),
    View("user_risk", "risk"),
)


@dataclass(frozen=True)
class Service:
    """A FeatureService over ``views`` (all views when empty)."""

    name: str
    views: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


SERVICES: tuple[Service, ...] = (
    Service("bench_service"),
    Service("bench_service_precomputed", options={"precompute_online": True}),
)


@dataclass(frozen=True)
class Scenario:
    """One request shape: a ``features`` list (every feature of every view) or a service.

    ``floor`` scenarios POST the same ``features`` body to /floor instead; every scenario
    is shown as a fraction of the mean of the floor runs at the same rows and connections.
    """

    name: str
    service: str = ""
    floor: bool = False

    @property
    def path(self) -> str:
        return "/floor" if self.floor else "/get-online-features"


SCENARIOS: tuple[Scenario, ...] = (
    # The floor runs first and last at each rows x conns point: this VM's speed drifts by
    # 20-30% within minutes, and the mean of the two brackets the runs in between.
    Scenario("floor_before", floor=True),
    Scenario("features"),
    Scenario("service", service="bench_service"),
    Scenario("service_precomputed", service="bench_service_precomputed"),
    Scenario("floor", floor=True),
)


def all_refs() -> list[str]:
    return [ref for view in VIEWS for ref in view.refs()]


def scenario(name: str) -> Scenario:
    for item in SCENARIOS:
        if item.name == name:
            return item
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(s.name for s in SCENARIOS)}")


def _plan(args: argparse.Namespace) -> int:
    """One line per run: scenario rows conns path service ("-" for none)."""
    names = args.scenarios.split() if args.scenarios else [s.name for s in SCENARIOS]
    try:
        chosen = [scenario(name) for name in names]
    except KeyError as exc:
        print(f"suite_spec: {exc.args[0]}", file=sys.stderr)
        return 2
    for rows in args.rows.split():
        for conns in args.conns.split():
            for item in chosen:
                print(item.name, rows, conns, item.path, item.service or "-")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="print the runs, one per line")
    plan.add_argument("--rows", default="1 10 100")
    plan.add_argument("--conns", default="1 16")
    plan.add_argument("--scenarios", default="", help="names to run (default: all)")
    plan.set_defaults(run=_plan)
    refs = sub.add_parser("features", help="print every feature ref, comma-separated")
    refs.set_defaults(run=lambda _args: print(",".join(all_refs())) or 0)
    pre = sub.add_parser(
        "precomputed-services", help="print the services that need `ladle precompute`"
    )
    pre.set_defaults(
        run=lambda _args: (
            print(" ".join(s.name for s in SERVICES if s.options.get("precompute_online"))) or 0
        )
    )
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
