"""The optional request steps bench/overhead.sh switches on, and proof that each is on.

    python -m bench.overhead_configs steps NAME
        Print "METRICS AUTH ACCESS_LOG" (1 = on) for config NAME of ``CONFIGS``.

    python -m bench.overhead_configs auth REPO OUT_DIR
        Turn REPO (a copy of the suite repo) into an oidc repo: a new RSA key, its JWKS in
        REPO/jwks.json, an ``auth`` section in feature_store.yaml that trusts only that
        file, and REPO/bench_permissions.py with one Permission granting read_online on
        every view and service to the role ``bench-reader``. Writes two RS256 tokens
        valid for 30 days to OUT_DIR: ``token`` carries the role, ``token_norole`` does
        not (it must get 403). Run ``ladle apply`` on REPO afterwards.

    python -m bench.overhead_configs metrics DIR
        Sum ``feast_feature_server_request_total`` for POST /get-online-features with
        status 200 over the worker files in DIR (a PROMETHEUS_MULTIPROC_DIR); exit 1 when
        it is 0, so a run that claims metrics on really recorded them.

The key is thrown away with the temp dir; nothing here talks to an identity provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.bench.invalid/realms/ladle"
CLIENT_ID = "ladle-bench"
ROLE = "bench-reader"
KID = "bench-key-1"
LIFETIME_S = 30 * 24 * 3600


class Steps(NamedTuple):
    metrics: bool
    auth: bool
    access_log: bool


#: The server configs bench/overhead.sh measures, in its default order.
CONFIGS: dict[str, Steps] = {
    "baseline": Steps(metrics=False, auth=False, access_log=False),
    "metrics": Steps(metrics=True, auth=False, access_log=False),
    "auth": Steps(metrics=False, auth=True, access_log=False),
    "access_log": Steps(metrics=False, auth=False, access_log=True),
    "all": Steps(metrics=True, auth=True, access_log=True),
}

PERMISSIONS_PY = f'''\
"""Written by bench/overhead_configs.py: readers with role {ROLE!r} may read online."""

from registry import AuthzedAction, FeatureService, FeatureView, Permission, RoleBasedPolicy

bench_readers = Permission(
    name="bench-readers",
    types=[FeatureView, FeatureService],
    policy=RoleBasedPolicy(roles=["{ROLE}"]),
    actions=[AuthzedAction.READ_ONLINE],
)
'''

AUTH_YAML = f"""
auth:
  type: oidc
  jwks_file: jwks.json
  issuer: {ISSUER}
  client_id: {CLIENT_ID}
"""


def sign(key: rsa.RSAPrivateKey, roles: list[str], now: int) -> str:
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "bench-client",
        "roles": roles,
        "iat": now,
        "exp": now + LIFETIME_S,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def make_auth_repo(repo: Path, out: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(key.public_key()))
    (repo / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": KID}]}))
    config = repo / "feature_store.yaml"
    text = config.read_text()
    if "\nauth:" in f"\n{text}":
        raise SystemExit(f"{config} already has an auth section")
    config.write_text(text.rstrip("\n") + "\n" + AUTH_YAML)
    (repo / "bench_permissions.py").write_text(PERMISSIONS_PY)
    out.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    (out / "token").write_text(sign(key, [ROLE], now))
    (out / "token_norole").write_text(sign(key, ["someone-else"], now))


def served_requests(folder: Path) -> float:
    """200s of /get-online-features counted by every worker's files in ``folder``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    value = registry.get_sample_value(
        "feast_feature_server_request_total",
        {"endpoint": "/get-online-features", "status": "200"},
    )
    return value or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    steps = sub.add_parser("steps", help="print METRICS AUTH ACCESS_LOG of a config")
    steps.add_argument("name")
    auth = sub.add_parser("auth", help="make REPO an oidc repo; tokens to OUT_DIR")
    auth.add_argument("repo", type=Path)
    auth.add_argument("out", type=Path)
    metrics = sub.add_parser("metrics", help="check that DIR counted served requests")
    metrics.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "steps":
        if args.name not in CONFIGS:
            print(f"unknown config {args.name!r}; known: {' '.join(CONFIGS)}", file=sys.stderr)
            return 2
        print(" ".join(str(int(on)) for on in CONFIGS[args.name]))
        return 0
    if args.command == "auth":
        make_auth_repo(args.repo, args.out)
        print(f"auth: {args.repo} trusts {args.repo / 'jwks.json'}; tokens in {args.out}")
        return 0
    count = served_requests(args.folder)
    if not count:
        print(f"metrics: no /get-online-features 200 counted in {args.folder}", file=sys.stderr)
        return 1
    print(f"metrics ok: {count:.0f} /get-online-features 200s counted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
