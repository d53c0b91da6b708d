"""The ``auth`` section of feature_store.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.auth_config import DEFAULT_ALGORITHMS, NoAuthConfig, OidcAuthConfig
from registry.config import ConfigError, load_repo_config
from tests.registry.test_config import config_error, write_config

OIDC = """
project: demo
auth:
  type: oidc
"""


def test_absent_auth_or_no_type_means_no_auth(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\n")
    assert load_repo_config(tmp_path).config.auth == NoAuthConfig()
    write_config(tmp_path, "project: demo\nauth: {}\n")
    assert load_repo_config(tmp_path).config.auth == NoAuthConfig()
    write_config(tmp_path, "project: demo\nauth: {type: no_auth}\n")
    assert load_repo_config(tmp_path).config.auth == NoAuthConfig()


def test_feast_oidc_section_is_accepted(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        OIDC
        + """
  client_id: feast-server
  auth_discovery_url: https://keycloak.example/realms/ml/.well-known/openid-configuration
  client_secret: ${CLIENT_SECRET}
  username: reader
  password: hunter2
""",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLIENT_SECRET", "abc")
        auth = load_repo_config(tmp_path).config.auth
    assert isinstance(auth, OidcAuthConfig)
    assert auth.audiences == ["feast-server"]
    assert auth.issuer is None  # taken from the discovery document
    assert auth.algorithms == DEFAULT_ALGORITHMS
    assert auth.leeway_seconds == 10.0


def test_jwks_url_with_issuer_and_audiences(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        OIDC
        + """
  jwks_url: https://idp.example/keys
  issuer: https://idp.example/
  audience: [api-a, api-b]
  algorithms: [ES256]
  roles_claims: [realm_access.roles, ["https://example.com/claims", "roles"]]
""",
    )
    auth = load_repo_config(tmp_path).config.auth
    assert isinstance(auth, OidcAuthConfig)
    assert auth.audiences == ["api-a", "api-b"]
    assert auth.roles_claims == ["realm_access.roles", ["https://example.com/claims", "roles"]]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("  issuer: i\n  client_id: c\n", "give exactly one of auth_discovery_url"),
        (
            "  jwks_url: u\n  jwks_file: f\n  issuer: i\n  client_id: c\n",
            "give exactly one of auth_discovery_url",
        ),
        ("  jwks_url: u\n  issuer: i\n", "audience (or client_id) is required"),
        ("  jwks_url: u\n  client_id: c\n", "issuer is required"),
        (
            "  jwks_url: u\n  issuer: i\n  client_id: c\n  algorithms: [HS256]\n",
            "algorithm 'HS256' is not accepted",
        ),
        (
            "  jwks_url: u\n  issuer: i\n  client_id: c\n  algorithms: [none]\n",
            "algorithm 'none' is not accepted",
        ),
        ("  jwks_url: u\n  issuer: i\n  client_id: c\n  leeway_seconds: -1\n", "leeway_seconds"),
        ("  jwks_url: u\n  issuer: i\n  client_id: c\n  secret: x\n", "auth.secret: unknown key"),
    ],
)
def test_bad_oidc_sections_name_the_problem(tmp_path: Path, section: str, problem: str) -> None:
    message = config_error(tmp_path, OIDC + section)
    assert message.startswith(f"{tmp_path / 'feature_store.yaml'}: auth")
    assert problem in message


def test_unsupported_auth_type(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: demo\nauth: {type: kubernetes}\n")
    assert "auth.type" in message and "kubernetes" in message


def test_secrets_do_not_appear_in_config_errors(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        OIDC + "  jwks_url: u\n  client_id: c\n  client_secret: very-secret-value\n",
    )
    with pytest.raises(ConfigError) as info:
        load_repo_config(tmp_path)
    assert "very-secret-value" not in str(info.value)


def test_repr_leaves_out_client_secrets(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        OIDC + "  jwks_url: u\n  issuer: i\n  client_id: c\n  client_secret: very-secret-value\n"
        "  password: hunter2-value\n  token: eyJ-token-value\n",
    )
    auth = load_repo_config(tmp_path).config.auth
    shown = repr(auth) + repr(load_repo_config(tmp_path).config)
    assert "jwks_url='u'" in shown
    for secret in ("very-secret-value", "hunter2-value", "eyJ-token-value"):
        assert secret not in shown
