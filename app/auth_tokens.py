"""Bearer JWTs: checked against the provider's keys, turned into a caller's roles and groups.

A token is accepted only when its header names one of the configured asymmetric
algorithms, a key of the JWKS that fits that algorithm verifies its signature, and its
``iss``, ``aud``, ``exp`` (required), ``nbf`` and ``iat`` hold, within the leeway. A
validated token is remembered until it expires (a bounded LRU), so a client that sends
the same token on every request pays for one signature check.

Error messages say what is wrong with a token but never repeat it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt

from app.auth_jwks import JwksStore
from registry.auth_config import ClaimPath, OidcAuthConfig


class TokenRejected(Exception):
    """The token is missing, malformed, forged, expired or not meant for this server."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """The provider's keys could not be loaded, so no token can be checked now."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request, as far as permissions care."""

    subject: str
    roles: frozenset[str]
    groups: frozenset[str]
    #: What authorization decisions are cached by.
    key: tuple[frozenset[str], frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.roles, self.groups))


def _claim_paths(paths: list[ClaimPath], client_id: str | None) -> list[list[str]]:
    """Claim paths as lists of keys, with {client_id} filled in (or the path dropped)."""
    resolved = []
    for path in paths:
        keys = path.split(".") if isinstance(path, str) else list(path)
        if any("{client_id}" in key for key in keys):
            if not client_id:
                continue
            keys = [key.replace("{client_id}", client_id) for key in keys]
        resolved.append(keys)
    return resolved


def _strings_at(claims: dict[str, Any], path: list[str]) -> list[str]:
    """The strings at a claim path: a list of strings, or one string; else nothing."""
    node: Any = claims
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return []
        node = node[key]
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [item for item in node if isinstance(item, str)]
    return []


def _describe(exc: jwt.PyJWTError) -> str:
    """A message for a refused token that names the problem, not the token."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet (nbf or iat is in the future)"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token is not meant for this server (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token was issued by an issuer this server does not accept (iss)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "the token's iat claim is not a number"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, jwt.DecodeError):
        return "the token is not a well-formed JWT"
    return "the token is invalid"


class TokenValidator:
    def __init__(self, config: OidcAuthConfig, keys: JwksStore) -> None:
        self.keys = keys
        self.algorithms = frozenset(config.algorithms)
        self.audiences = config.audiences
        self.leeway = config.leeway_seconds
        self.cache_size = config.token_cache_size
        self.roles_paths = _claim_paths(config.roles_claims, config.client_id)
        self.groups_paths = _claim_paths(config.groups_claims, config.client_id)
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def clear(self) -> None:
        """Forget validated tokens (the key set changed: some may be signed by a retired key)."""
        self._cache.clear()

    def cached(self, token: str) -> Principal | None:
        """The caller of a token validated before and not expired since, if any."""
        cached = self._cache.get(token)
        if cached is not None:
            if time.time() < cached[1]:
                self._cache.move_to_end(token)
                return cached[0]
            del self._cache[token]
        return None

    async def principal(self, token: str) -> Principal:
        """The caller a token stands for; raises TokenRejected or KeysUnavailable."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        claims = await self._validate(token)
        principal = self.principal_of(claims)
        if self.cache_size:
            self._cache[token] = (principal, float(claims["exp"]) + self.leeway)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return principal

    def principal_of(self, claims: dict[str, Any]) -> Principal:
        roles = {r for path in self.roles_paths for r in _strings_at(claims, path)}
        groups = {g for path in self.groups_paths for g in _strings_at(claims, path)}
        subject = claims.get("sub")
        return Principal(
            subject if isinstance(subject, str) else "", frozenset(roles), frozenset(groups)
        )

    async def _validate(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("the token is not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            accepted = ", ".join(sorted(self.algorithms))
            raise TokenRejected(f"the token's signing algorithm is not accepted ({accepted})")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("the token's kid header is not a string")
        keys = self.keys.keys
        candidates = keys.candidates(alg, kid) if keys is not None else []
        if not candidates:
            refreshed = await self.keys.refresh_if_allowed()
            keys = self.keys.keys
            if keys is None or (refreshed is False) or (refreshed is None and self.keys.problem):
                # The provider did not answer: whether the key exists cannot be told.
                raise KeysUnavailable(self.keys.problem or "the signing keys are not loaded")
            candidates = keys.candidates(alg, kid)
            if not candidates:
                raise TokenRejected("the token is signed with a key the server does not know")
        issuer = self.keys.issuer
        if issuer is None:
            raise KeysUnavailable("the issuer is not known yet")
        for key in candidates:
            try:
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=self.audiences,
                    issuer=issuer,
                    leeway=self.leeway,
                    options={
                        "require": ["exp", "iss", "aud"],
                        "verify_signature": True,
                        "verify_exp": True,
                        "verify_nbf": True,
                        "verify_iat": True,
                        "verify_iss": True,
                        "verify_aud": True,
                    },
                )
            except jwt.InvalidSignatureError:
                continue  # another key with the same kid (or none) may fit
            except jwt.PyJWTError as exc:
                raise TokenRejected(_describe(exc)) from None
        raise TokenRejected("the token's signature does not verify")
