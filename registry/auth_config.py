"""The ``auth`` section of ``feature_store.yaml``: who may call the server.

``no_auth`` (the default) serves everyone. ``oidc`` requires a bearer JWT signed by one
of the identity provider's keys, from its JWKS (a URL, a file, or the provider's
discovery document). The keys are Feast's where Feast has them, so a Feast server's
``auth`` section works as it is; Ladle adds ``jwks_url``, ``jwks_file`` and the claim
paths.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: Asymmetric JWS algorithms and the key type each needs. Symmetric (HS*) and "none"
#: are never accepted: a server that holds only public keys cannot check them safely.
ALGORITHM_KEY_TYPES: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
DEFAULT_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
]

#: A claim path: "a.b.c" walks nested objects; a list of keys allows dots inside keys
#: (``["https://example.com/claims", "roles"]``). ``{client_id}`` is replaced by the
#: configured client_id; a path that needs it is skipped when there is none.
ClaimPath = str | list[str]


class NoAuthConfig(msgspec.Struct, tag="no_auth", forbid_unknown_fields=True, frozen=True):
    pass


class OidcAuthConfig(msgspec.Struct, tag="oidc", forbid_unknown_fields=True, frozen=True):
    #: Where the keys come from: exactly one of these three.
    auth_discovery_url: str | None = None
    jwks_url: str | None = None
    #: A JWKS document on disk, relative to the repo.
    jwks_file: str | None = None
    client_id: str | None = None
    #: Accepted ``aud`` value(s); default: client_id. One of the two is required.
    audience: str | list[str] | None = None
    #: Required ``iss``; default: the discovery document's issuer. Required otherwise.
    issuer: str | None = None
    algorithms: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    #: Clock skew allowed when checking exp, nbf and iat.
    leeway_seconds: float = 10.0
    roles_claims: list[ClaimPath] = msgspec.field(
        default_factory=lambda: ["roles", "resource_access.{client_id}.roles"]
    )
    groups_claims: list[ClaimPath] = msgspec.field(default_factory=lambda: ["groups"])
    #: How often the JWKS is fetched again in the background.
    jwks_cache_lifespan_seconds: float = 300.0
    #: The least time between two fetches, whatever asks for them (an unknown ``kid``).
    jwks_min_refresh_interval_seconds: float = 10.0
    jwks_request_timeout_seconds: float = 5.0
    verify_ssl: bool = True
    ca_cert_path: str = ""
    #: Validated tokens kept (until they expire), so a repeated token costs a lookup.
    token_cache_size: int = 4096
    # Feast's client-side keys: accepted so one feature_store.yaml serves both, never
    # used by the server and never logged.
    ui_client_id: str | None = None
    username: str | None = None
    password: str | None = None
    client_secret: str | None = None
    token: str | None = None
    token_env_var: str | None = None

    def __post_init__(self) -> None:
        # msgspec reports a ValueError raised here as a validation error of this section.
        sources = [self.auth_discovery_url, self.jwks_url, self.jwks_file]
        if sum(1 for s in sources if s) != 1:
            raise ValueError("give exactly one of auth_discovery_url, jwks_url and jwks_file")
        if self.audience is None and not self.client_id:
            raise ValueError("audience (or client_id) is required to check the token's aud")
        if not self.issuer and not self.auth_discovery_url:
            raise ValueError("issuer is required unless auth_discovery_url provides it")
        if not self.algorithms:
            raise ValueError("algorithms must list at least one algorithm")
        for name in self.algorithms:
            if name not in ALGORITHM_KEY_TYPES:
                raise ValueError(
                    f"algorithm {name!r} is not accepted; use asymmetric ones: "
                    + ", ".join(ALGORITHM_KEY_TYPES)
                )
        positive = {
            "leeway_seconds": self.leeway_seconds >= 0,
            "jwks_cache_lifespan_seconds": self.jwks_cache_lifespan_seconds > 0,
            "jwks_min_refresh_interval_seconds": self.jwks_min_refresh_interval_seconds >= 0,
            "jwks_request_timeout_seconds": self.jwks_request_timeout_seconds > 0,
            "token_cache_size": self.token_cache_size >= 0,
        }
        for key, ok in positive.items():
            if not ok:
                raise ValueError(f"{key} must be positive")

    def __repr__(self) -> str:
        """Without the client-side secrets, in case a config is ever logged."""
        shown = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if name not in _SECRET_FIELDS and getattr(self, name) is not None
        }
        return f"OidcAuthConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def audiences(self) -> list[str]:
        if self.audience is None:
            return [self.client_id] if self.client_id else []
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)


_SECRET_FIELDS = frozenset({"password", "client_secret", "token"})
AuthConfig = NoAuthConfig | OidcAuthConfig


def with_default_auth_type(raw: dict[str, Any]) -> dict[str, Any]:
    """An ``auth`` mapping without ``type`` means no_auth, as in Feast."""
    auth = raw.get("auth")
    if isinstance(auth, dict) and "type" not in auth:
        return {**raw, "auth": {"type": "no_auth", **auth}}
    return raw
