"""The identity provider's public keys (a JWKS), loaded and kept fresh without blocking.

Keys come from a URL, from the provider's OIDC discovery document, or from a file. They
are fetched at startup, again in the background every ``jwks_cache_lifespan_seconds``,
and when a token names a key we do not have (a rotation) -- but never more often than
``jwks_min_refresh_interval_seconds``, so tokens with made-up key ids cannot make the
server hammer the provider. Concurrent requests share one fetch. A failed fetch keeps
the keys already loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import orjson

from registry.auth_config import ALGORITHM_KEY_TYPES, OidcAuthConfig

log = logging.getLogger("ladle.auth")

#: A JWKS or discovery document larger than this is refused.
MAX_DOCUMENT_BYTES = 1 << 20
MIN_RSA_BITS = 2048
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class JwksError(Exception):
    """The keys could not be loaded; the message names the source but no secret."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str | None
    kty: str
    #: The JWK's own ``alg``, when it states one: then only that algorithm may use it.
    alg: str | None
    curve: str | None
    key: Any  # a cryptography public key

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key."""
        if ALGORITHM_KEY_TYPES.get(alg) != self.kty or self.alg not in (None, alg):
            return False
        return alg not in _EC_CURVES or _EC_CURVES[alg] == self.curve


class KeySet:
    def __init__(self, keys: list[VerifyKey]) -> None:
        self.keys = keys
        self._by_kid: dict[str, list[VerifyKey]] = {}
        for key in keys:
            if key.kid is not None:
                self._by_kid.setdefault(key.kid, []).append(key)

    def candidates(self, alg: str, kid: str | None) -> list[VerifyKey]:
        """Keys that may have signed a token: those with its ``kid`` (or, failing that,
        keys without one), restricted to keys that fit its algorithm."""
        if kid is not None:
            named = [k for k in self._by_kid.get(kid, ()) if k.fits(alg)]
            if named:
                return named
            return [k for k in self.keys if k.kid is None and k.fits(alg)]
        return [k for k in self.keys if k.fits(alg)]


def parse_jwks(data: bytes, origin: str) -> tuple[KeySet, Any]:
    """The usable signing keys of a JWKS document, and its key list (to spot changes).

    Symmetric keys, encryption keys and RSA keys under 2048 bits are skipped.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise JwksError(f"{origin}: not a JSON document") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError(f"{origin}: not a JWKS (no 'keys' list)")
    keys: list[VerifyKey] = []
    for index, entry in enumerate(entries):
        try:
            keys.append(_verify_key(entry))
        except Exception as exc:  # one malformed key does not spoil the others
            log.debug("%s: key %d skipped: %s: %s", origin, index, type(exc).__name__, exc)
    if not keys:
        raise JwksError(f"{origin}: holds no usable signing key (RSA, EC or OKP)")
    return KeySet(keys), entries


def _verify_key(entry: object) -> VerifyKey:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    kty = entry.get("kty")
    if kty not in ("RSA", "EC", "OKP"):
        raise ValueError(f"key type {kty!r} cannot verify signatures")
    if entry.get("use", "sig") != "sig":
        raise ValueError("not a signing key")
    ops = entry.get("key_ops")
    if ops is not None and "verify" not in ops:
        raise ValueError("key_ops do not include verify")
    alg = entry.get("alg")
    if alg is not None and ALGORITHM_KEY_TYPES.get(alg) != kty:
        raise ValueError(f"alg {alg!r} does not fit key type {kty}")
    key = jwt.PyJWK(entry).key
    if hasattr(key, "public_key"):  # a private JWK: keep only what verifies
        key = key.public_key()
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits is too short")
    kid = entry.get("kid")
    return VerifyKey(
        kid=kid if isinstance(kid, str) else None,
        kty=kty,
        alg=alg,
        curve=entry.get("crv"),
        key=key,
    )


def redact(url: str) -> str:
    """A URL fit for logs: without user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class JwksStore:
    def __init__(self, config: OidcAuthConfig, root: Path) -> None:
        self.config = config
        self.file = (root / config.jwks_file) if config.jwks_file else None
        self.keys: KeySet | None = None
        #: Tokens must carry this ``iss``: configured, else from the discovery document.
        self.issuer: str | None = config.issuer
        #: Why the last fetch failed; None after a good one.
        self.problem: str | None = None
        #: Called after the key set changed (cached tokens may be signed by a retired key).
        self.on_change: Callable[[], None] = lambda: None
        self._jwks_uri = config.jwks_url
        self._entries: Any = None
        self._last_attempt = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def describe(self) -> str:
        if self.file is not None:
            return str(self.file)
        return redact(self.config.auth_discovery_url or self._jwks_uri or "")

    async def start(self) -> None:
        """Load the keys once, then keep them fresh in the background.

        A JWKS file that cannot be used stops the worker (a configuration mistake); an
        unreachable provider does not: requests with tokens get 503s until it answers.
        """
        if self.file is None:
            self._client = httpx.AsyncClient(
                timeout=self.config.jwks_request_timeout_seconds,
                verify=self._tls(),
                headers={"Accept": "application/json", "User-Agent": "ladle"},
            )
        loaded = await self.refresh()
        if not loaded and self.file is not None:
            raise JwksError(self.problem or "the JWKS file could not be loaded")
        self._loop_task = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = self._inflight = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def may_refresh(self) -> bool:
        """Whether a fetch now would respect the minimum interval between fetches."""
        interval = self.config.jwks_min_refresh_interval_seconds
        return time.monotonic() - self._last_attempt >= interval

    async def refresh_if_allowed(self) -> bool | None:
        """For a token whose key is unknown: join the fetch in progress, or start one if
        the rate limit allows. True or False tells whether it succeeded; None means no
        fetch was allowed."""
        if self._inflight is None and not self.may_refresh():
            return None
        return await self.refresh()

    async def refresh(self) -> bool:
        """Fetch the keys (joining a fetch in progress); True when it succeeded."""
        if self._inflight is None:
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())
        task = self._inflight
        # Shielded: a request that gives up must not cancel the fetch others wait for.
        return await asyncio.shield(task)

    async def _refresh(self) -> bool:
        self._last_attempt = time.monotonic()
        try:
            await self._load()
        except Exception as exc:  # anything: the background task must live on
            problem = (
                str(exc)
                if isinstance(exc, JwksError)
                else (f"{self.describe()}: {type(exc).__name__}: {exc}")
            )
            if problem != self.problem:
                log.warning("signing keys: %s; %s", problem, self._keeping())
            self.problem = problem
            return False
        finally:
            self._inflight = None
        if self.problem is not None:
            log.info("signing keys from %s are loaded again", self.describe())
        self.problem = None
        return True

    def _keeping(self) -> str:
        if self.keys is None:
            return "requests with a token get 503 until the keys load"
        return "keeping the keys loaded before"

    async def _keep_fresh(self) -> None:
        while True:
            healthy = self.keys is not None and self.problem is None
            interval = self.config.jwks_cache_lifespan_seconds
            if not healthy:
                interval = min(interval, max(self.config.jwks_min_refresh_interval_seconds, 1.0))
            await asyncio.sleep(interval)
            await self.refresh()

    async def _load(self) -> None:
        if self.file is not None:
            try:
                data = self.file.read_bytes()
            except OSError as exc:
                raise JwksError(f"{self.file}: {exc.strerror}") from None
            origin = str(self.file)
        else:
            if self._jwks_uri is None:
                await self._discover()
            assert self._jwks_uri is not None
            data = await self._get(self._jwks_uri)
            origin = redact(self._jwks_uri)
        keys, entries = parse_jwks(data, origin)
        if entries != self._entries:
            if self.keys is not None:
                log.info("signing keys from %s changed", origin)
                self.on_change()
            self.keys, self._entries = keys, entries

    async def _discover(self) -> None:
        url = self.config.auth_discovery_url
        assert url is not None
        try:
            document = orjson.loads(await self._get(url))
        except orjson.JSONDecodeError:
            raise JwksError(f"{redact(url)}: not a JSON document") from None
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        issuer = document.get("issuer") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str) or not isinstance(issuer, str):
            raise JwksError(f"{redact(url)}: the discovery document lacks jwks_uri or issuer")
        self._jwks_uri = jwks_uri
        if self.issuer is None:
            self.issuer = issuer

    async def _get(self, url: str) -> bytes:
        assert self._client is not None
        where = redact(url)
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise JwksError(f"{where} answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_DOCUMENT_BYTES:
                        raise JwksError(f"{where}: the document is larger than 1 MiB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            detail = (str(exc) or type(exc).__name__).replace(url, where)
            raise JwksError(f"{where}: {detail}") from None

    def _tls(self) -> ssl.SSLContext | bool:
        if not self.config.verify_ssl:
            return False
        if self.config.ca_cert_path:
            return ssl.create_default_context(cafile=self.config.ca_cert_path)
        return True
