"""Authentication and permissions for the HTTP API (``auth: {type: oidc}``).

Each protected endpoint first calls :meth:`Auth.authenticate`, before it reads the body,
so a caller without a valid token learns nothing (401). Once it knows what the request
touches, it asks the returned :class:`Access` for the action (403 when refused). With
``no_auth`` the server has no Auth at all and endpoints skip both steps.

Status codes: 401 (``WWW-Authenticate: Bearer``) for a missing, malformed, forged,
expired or foreign token; 403 for a valid token without the permission; 503 when the
provider's keys cannot be loaded, so that no token can be checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import Scope

from app.auth_jwks import JwksStore
from app.auth_policy import (
    Authorizer,
    Resolver,
    materialize_resources,
    push_offline_resources,
    push_online_resources,
    read_resources,
    view_write_resources,
)
from app.auth_tokens import KeysUnavailable, Principal, TokenRejected, TokenValidator
from app.errors import ApiError, Loc
from app.resolve import ReadPlan
from registry.auth_config import OidcAuthConfig
from registry.config import RepoSettings
from registry.model import RegistrySnapshot

log = logging.getLogger("ladle.auth")

_REALM = 'Bearer realm="ladle"'


def _unauthorized(type: str, msg: str, error: str | None = None) -> ApiError:
    challenge = _REALM
    if error:
        challenge += f', error="{error}", error_description="{msg}"'
    return ApiError(
        401, type, ["header", "Authorization"], msg, headers={"WWW-Authenticate": challenge}
    )


class Access:
    """What one authenticated request may do; each method raises a 403 ApiError if not."""

    __slots__ = ("_auth", "principal")

    def __init__(self, auth: Auth, principal: Principal) -> None:
        self._auth = auth
        self.principal = principal

    def read_online(self, plan: ReadPlan, service: str | None) -> None:
        """Reading a plan needs read_online on the feature service, if one is named, and on
        every view it reads: requested ones and the sources of on-demand views."""
        snapshot = self._auth.current_snapshot()
        views = self._auth.authorizer.plan_views(snapshot, plan)
        loc: Loc = ["body", "feature_service" if service is not None else "features"]
        self._check(snapshot, "read_online", ("read", service, views), read_resources, loc)

    def push(self, source: str, to: str) -> None:
        """write_online and/or write_offline, by ``to``, on the push source and its views."""
        snapshot = self._auth.current_snapshot()
        loc: Loc = ["body", "push_source_name"]
        if to != "offline":
            self._check(snapshot, "write_online", ("push", source), push_online_resources, loc)
        if to != "online":
            self._check(snapshot, "write_offline", ("push", source), push_offline_resources, loc)

    def write_online(self, view: str) -> None:
        snapshot = self._auth.current_snapshot()
        loc: Loc = ["body", "feature_view_name"]
        self._check(snapshot, "write_online", ("view", view), view_write_resources, loc)

    def materialize(self, views: list[str]) -> None:
        snapshot = self._auth.current_snapshot()
        key = ("materialize", tuple(views))
        self._check(snapshot, "materialize", key, materialize_resources, ["body", "feature_views"])

    def _check(
        self, snapshot: RegistrySnapshot, action: str, key: object, resolve: Resolver, loc: Loc
    ) -> None:
        refusal = self._auth.authorizer.refusal(snapshot, self.principal, action, key, resolve)
        if refusal:
            raise ApiError(
                403,
                "forbidden",
                loc,
                refusal,
                headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'},
            )


class Auth:
    def __init__(
        self,
        config: OidcAuthConfig,
        settings: RepoSettings,
        snapshot: Callable[[], RegistrySnapshot | None],
    ) -> None:
        self.keys = JwksStore(config, settings.root)
        self.tokens = TokenValidator(config, self.keys)
        self.keys.on_change = self.tokens.clear
        self.authorizer = Authorizer()
        self._snapshot = snapshot

    async def start(self) -> None:
        await self.keys.start()

    async def stop(self) -> None:
        await self.keys.stop()

    def current_snapshot(self) -> RegistrySnapshot:
        snapshot = self._snapshot()
        if snapshot is None:
            raise ApiError(503, "registry_unavailable", [], "the registry is not loaded")
        return snapshot

    async def authenticate(self, scope: Scope) -> Access:
        header = _authorization(scope["headers"])
        if not header:
            raise _unauthorized("not_authenticated", "a bearer token is required")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized(
                "not_authenticated", "the Authorization header must be 'Bearer <token>'"
            )
        principal = self.tokens.cached(token)
        if principal is not None:
            return Access(self, principal)
        try:
            principal = await self.tokens.principal(token)
        except TokenRejected as exc:
            log.debug("refused a token on %s: %s", scope["path"], exc.reason)
            raise _unauthorized("invalid_token", exc.reason, "invalid_token") from None
        except KeysUnavailable:
            # The reason (the provider's address and error) is logged, not shown.
            retry = max(1, int(self.keys.config.jwks_min_refresh_interval_seconds))
            raise ApiError(
                503,
                "auth_unavailable",
                [],
                "the identity provider's signing keys cannot be loaded; try again later",
                headers={"Retry-After": str(retry)},
            ) from None
        return Access(self, principal)


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Authorization header, read straight from the ASGI scope (names are lowercase)."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def create_auth(
    settings: RepoSettings, snapshot: Callable[[], RegistrySnapshot | None]
) -> Auth | None:
    """The server's Auth, or None with ``no_auth`` (requests then take no auth step)."""
    config = settings.config.auth
    if isinstance(config, OidcAuthConfig):
        return Auth(config, settings, snapshot)
    return None
