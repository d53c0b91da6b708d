"""``ladle apply`` and feature services with precompute_online."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from registry.apply import apply_repo
from registry.file_registry import FileRegistry
from tests.registry.repos import BASE, apply_error, make_repo

VIEWS = (
    BASE
    + """
from registry import RequestSource, on_demand_feature_view

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
customers = FileSource(path="data/customers.parquet", timestamp_field="ts")
rates = FeatureView(name="rates", entities=[driver], ttl=timedelta(days=1), source=stats,
                    schema=[Field(name="conv_rate", dtype=Float32),
                            Field(name="acc_rate", dtype=Float64)])
trips = FeatureView(name="trips", entities=[driver], source=stats,
                    schema=[Field(name="trips", dtype=Int64), Field(name="city", dtype=String)])
spend = FeatureView(name="spend", entities=[customer], source=customers,
                    schema=[Field(name="spend", dtype=Float64)])
extra = RequestSource(name="extra", schema=[Field(name="bonus", dtype=Float64)])

@on_demand_feature_view(sources=[rates, extra], schema=[Field(name="boosted", dtype=Float64)])
def boost(inputs):
    return {"boosted": [c + b for c, b in zip(inputs["conv_rate"], inputs["bonus"])]}

@on_demand_feature_view(sources=[rates], schema=[Field(name="doubled", dtype=Float64)],
                        write_to_online_store=True)
def doubled(inputs):
    return {"doubled": [c * 2 for c in inputs["conv_rate"]]}
"""
)


def test_a_precomputed_service_is_applied(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        VIEWS
        + """
svc = FeatureService(name="svc", precompute_online=True,
                     features=[trips[["city"]], rates, doubled, trips[["trips"]]])
plain = FeatureService(name="plain", features=[rates, spend])
""",
    )
    report = asyncio.run(apply_repo(settings))
    assert report.snapshot.feature_services["svc"].precompute_online
    assert not report.snapshot.feature_services["plain"].precompute_online
    assert report.needs_precompute == ["svc"]
    assert report.snapshot.precomputed == {}


def test_services_that_cannot_be_precomputed_are_refused(tmp_path: Path) -> None:
    settings = make_repo(
        tmp_path,
        VIEWS
        + """
mixed = FeatureService(name="mixed", precompute_online=True, features=[rates, spend])
computed = FeatureService(name="computed", precompute_online=True, features=[rates, boost])
twice = FeatureService(name="twice", precompute_online=True,
                       features=[rates[["conv_rate"]], trips, rates[["conv_rate"]]])
odd = FeatureService(name="odd", precompute_online="yes", features=[rates])
""",
    )
    message = apply_error(settings)
    assert (
        "feature service 'mixed' (features.py): precompute_online: every view must have the "
        "same join keys, but: rates keyed by driver_id (Int64); spend keyed by "
        "customer_id (String)"
    ) in message
    assert (
        "feature service 'computed' (features.py): precompute_online: on-demand feature view "
        "'boost' is computed at request time, so it cannot be precomputed"
    ) in message
    assert (
        "feature service 'twice' (features.py): precompute_online: lists feature "
        "rates:conv_rate twice"
    ) in message
    assert "feature service 'odd' (features.py): precompute_online must be a bool" in message


def test_built_fingerprints_survive_apply_while_the_service_stays_precomputed(
    tmp_path: Path,
) -> None:
    service = 'svc = FeatureService(name="svc", precompute_online={on}, features=[rates, trips])\n'
    settings = make_repo(tmp_path, VIEWS + service.format(on=True))
    first = asyncio.run(apply_repo(settings))
    registry = FileRegistry(settings.registry_path)
    registry.update_sync(lambda s: msgspec.structs.replace(s, precomputed={"svc": "built"}))

    (tmp_path / "features.py").write_text(VIEWS + service.format(on=True) + "# edited\n")
    again = asyncio.run(apply_repo(settings))
    assert again.snapshot.precomputed == {"svc": "built"}
    assert again.needs_precompute == ["svc"]  # "built" is not the layout's fingerprint
    assert again.deleted_views == []

    (tmp_path / "features.py").write_text(VIEWS + service.format(on=False))
    off = asyncio.run(apply_repo(settings))
    assert off.snapshot.precomputed == {}
    assert off.deleted_views == ["svc:svc"]  # its vectors are dropped from the store
    assert off.needs_precompute == []
    assert first.snapshot.version < off.snapshot.version
