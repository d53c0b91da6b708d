"""Bearer token validation against real keys, a JWKS file and a JWKS served over HTTP."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.auth_jwks import JwksError, JwksStore
from app.auth_tokens import KeysUnavailable, TokenRejected, TokenValidator
from registry.auth_config import OidcAuthConfig
from tests.app.auth_support import (
    CLIENT_ID,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    hmac_token,
    jwks,
    jwks_server,
    oidc_config,
    self_signed_tls,
    unsigned_token,
)

RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")


def config(**overrides: Any) -> OidcAuthConfig:
    return msgspec.convert(oidc_config(**overrides), OidcAuthConfig)


async def validator_for(
    tmp_path: Path, *keys: SigningKey, **overrides: Any
) -> AsyncIterator[TokenValidator]:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(*keys)))
    store = JwksStore(config(jwks_file="jwks.json", **overrides), tmp_path)
    validator = TokenValidator(store.config, store)
    store.on_change = validator.clear
    await store.start()
    try:
        yield validator
    finally:
        await store.stop()


@pytest.fixture
async def validator(tmp_path: Path) -> AsyncIterator[TokenValidator]:
    async for v in validator_for(tmp_path, RSA, EC):
        yield v


async def rejected(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenRejected) as info:
        await validator.principal(token)
    assert token not in info.value.reason
    return info.value.reason


# ---- what is accepted -----------------------------------------------------------------


async def test_valid_rsa_and_ec_tokens_are_accepted(validator: TokenValidator) -> None:
    principal = await validator.principal(RSA.sign(claims(roles=["reader"], groups=["ds"])))
    assert principal.subject == "user-1"
    assert principal.roles == {"reader"}
    assert principal.groups == {"ds"}
    assert (await validator.principal(EC.sign(claims(sub="svc")))).subject == "svc"


async def test_audience_may_be_one_of_a_list_in_the_token(validator: TokenValidator) -> None:
    token = RSA.sign(claims(aud=["account", CLIENT_ID]))
    assert (await validator.principal(token)).subject == "user-1"


async def test_keycloak_client_roles_and_configured_claim_paths(tmp_path: Path) -> None:
    token_claims = claims(
        roles=["top"],
        resource_access={CLIENT_ID: {"roles": ["client-role"]}, "other": {"roles": ["x"]}},
        realm_access={"roles": ["realm-role"]},
        **{"https://example.com/claims": {"teams": ["ranking"]}},
    )
    async for default in validator_for(tmp_path, RSA):
        principal = await default.principal(RSA.sign(token_claims))
        assert principal.roles == {"top", "client-role"}
        assert principal.groups == frozenset()
    async for custom in validator_for(
        tmp_path,
        RSA,
        roles_claims=["realm_access.roles"],
        groups_claims=[["https://example.com/claims", "teams"]],
    ):
        principal = await custom.principal(RSA.sign(token_claims))
        assert principal.roles == {"realm-role"}
        assert principal.groups == {"ranking"}


async def test_expired_token_within_leeway_is_accepted(validator: TokenValidator) -> None:
    token = RSA.sign(claims(exp=int(time.time()) - 5))  # default leeway: 10 s
    assert (await validator.principal(token)).subject == "user-1"


# ---- what is refused ------------------------------------------------------------------


async def test_expired_token_past_leeway_is_refused(validator: TokenValidator) -> None:
    token = RSA.sign(claims(exp=int(time.time()) - 60))
    assert await rejected(validator, token) == "the token has expired"


async def test_token_without_exp_is_refused(validator: TokenValidator) -> None:
    assert await rejected(validator, RSA.sign(claims(exp=None))) == (
        "the token lacks the 'exp' claim"
    )


async def test_token_not_valid_yet_is_refused(validator: TokenValidator) -> None:
    later = int(time.time()) + 600
    assert "not valid yet" in await rejected(validator, RSA.sign(claims(nbf=later)))
    assert "not valid yet" in await rejected(validator, RSA.sign(claims(iat=later)))
    # Within the leeway, a clock a little ahead is fine.
    assert await validator.principal(RSA.sign(claims(nbf=int(time.time()) + 5)))


async def test_wrong_or_missing_issuer_is_refused(validator: TokenValidator) -> None:
    reason = await rejected(validator, RSA.sign(claims(iss="https://evil.example/")))
    assert reason == "the token was issued by an issuer this server does not accept (iss)"
    assert await rejected(validator, RSA.sign(claims(iss=None))) == (
        "the token lacks the 'iss' claim"
    )


async def test_wrong_or_missing_audience_is_refused(validator: TokenValidator) -> None:
    reason = await rejected(validator, RSA.sign(claims(aud="another-app")))
    assert reason == "the token is not meant for this server (aud)"
    assert await rejected(validator, RSA.sign(claims(aud=None))) == (
        "the token lacks the 'aud' claim"
    )


async def test_bad_signature_is_refused(validator: TokenValidator) -> None:
    impostor = SigningKey("rsa-1", "RS256", SigningKey.rsa("x").private)  # same kid
    assert await rejected(validator, impostor.sign(claims())) == (
        "the token's signature does not verify"
    )
    header, _, signature = RSA.sign(claims()).split(".")
    forged = json.dumps(claims(roles=["admin"])).encode()
    tampered = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    assert await rejected(validator, f"{header}.{tampered}.{signature}") == (
        "the token's signature does not verify"
    )


async def test_alg_none_is_refused(validator: TokenValidator) -> None:
    reason = await rejected(validator, unsigned_token(claims(), "rsa-1"))
    assert reason.startswith("the token's signing algorithm is not accepted")


async def test_hs256_signed_with_the_public_key_is_refused(validator: TokenValidator) -> None:
    token = hmac_token(claims(), RSA.public_pem(), "rsa-1")
    reason = await rejected(validator, token)
    assert reason.startswith("the token's signing algorithm is not accepted")


async def test_rs256_token_is_not_checked_with_an_ec_key(validator: TokenValidator) -> None:
    # kid of the EC key on an RS256 token: no key fits, so nothing verifies it.
    token = SigningKey("ec-1", "RS256", RSA.private).sign(claims())
    assert await rejected(validator, token) == (
        "the token is signed with a key the server does not know"
    )


async def test_jwk_alg_pins_the_algorithm(tmp_path: Path) -> None:
    pinned = SigningKey.rsa("pinned", "RS256", jwk={"alg": "RS512"})
    async for validator in validator_for(tmp_path, pinned):
        assert "does not know" in await rejected(validator, pinned.sign(claims()))


async def test_algorithms_not_configured_are_refused(tmp_path: Path) -> None:
    async for validator in validator_for(tmp_path, RSA, EC, algorithms=["ES256"]):
        assert "not accepted (ES256)" in await rejected(validator, RSA.sign(claims()))
        assert await validator.principal(EC.sign(claims()))


async def test_garbage_is_refused(validator: TokenValidator) -> None:
    for token in ("not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"):
        assert await rejected(validator, token) == "the token is not a well-formed JWT"


# ---- the JWKS: URL, refresh, outage ---------------------------------------------------


async def test_unknown_kid_refreshes_the_jwks_url() -> None:
    rotated = SigningKey.rsa("rsa-2")
    with jwks_server(RSA) as server:
        store = JwksStore(config(jwks_url=server.url), Path("."))
        validator = TokenValidator(store.config, store)
        await store.start()
        try:
            assert await validator.principal(RSA.sign(claims()))
            assert server.requests == 1
            server.document = jwks(RSA, rotated)  # the provider rotates its keys
            assert (await validator.principal(rotated.sign(claims(sub="new")))).subject == "new"
            assert server.requests == 2
        finally:
            await store.stop()


async def test_unknown_kid_refreshes_are_rate_limited() -> None:
    with jwks_server(RSA) as server:
        store = JwksStore(
            config(jwks_url=server.url, jwks_min_refresh_interval_seconds=60), Path(".")
        )
        validator = TokenValidator(store.config, store)
        await store.start()
        try:
            stranger = SigningKey.rsa("made-up")
            for _ in range(5):
                assert "does not know" in await rejected(validator, stranger.sign(claims()))
            assert server.requests == 1  # only the startup fetch
        finally:
            await store.stop()


async def test_discovery_document_gives_jwks_uri_and_issuer() -> None:
    with jwks_server(RSA) as server:
        store = JwksStore(config(auth_discovery_url=server.discovery_url, issuer=None), Path("."))
        validator = TokenValidator(store.config, store)
        await store.start()
        try:
            assert store.issuer == ISSUER
            assert await validator.principal(RSA.sign(claims()))
        finally:
            await store.stop()


async def test_provider_down_at_startup_means_unavailable_then_recovers() -> None:
    server = JwksServer(jwks(RSA))
    server.stop()  # nothing listens on its port
    store = JwksStore(config(jwks_url=server.url), Path("."))
    validator = TokenValidator(store.config, store)
    await store.start()  # does not raise: the worker serves, tokens get 503
    try:
        assert store.keys is None and store.problem
        with pytest.raises(KeysUnavailable):
            await validator.principal(RSA.sign(claims()))
        revived = JwksServer(jwks(RSA))
        try:
            store._jwks_uri = revived.url  # the provider is back (on a new port)
            assert await validator.principal(RSA.sign(claims()))
        finally:
            revived.stop()
    finally:
        await store.stop()


async def test_provider_down_later_keeps_the_loaded_keys() -> None:
    with jwks_server(RSA) as server:
        store = JwksStore(config(jwks_url=server.url), Path("."))
        validator = TokenValidator(store.config, store)
        await store.start()
        try:
            server.status = 500
            assert not await store.refresh()
            assert store.problem and "answered HTTP 500" in store.problem
            # Known keys still verify; an unknown kid cannot be told apart: 503.
            assert await validator.principal(RSA.sign(claims(sub="other")))
            with pytest.raises(KeysUnavailable):
                await validator.principal(SigningKey.rsa("rsa-9").sign(claims()))
        finally:
            await store.stop()


async def test_key_set_change_forgets_cached_tokens() -> None:
    with jwks_server(RSA) as server:
        store = JwksStore(config(jwks_url=server.url), Path("."))
        validator = TokenValidator(store.config, store)
        store.on_change = validator.clear
        await store.start()
        try:
            token = RSA.sign(claims())
            assert await validator.principal(token)
            server.document = jwks(EC)  # rsa-1 retired
            assert await store.refresh()
            assert "does not know" in await rejected(validator, token)
        finally:
            await store.stop()


async def test_validated_tokens_are_cached_until_they_expire(validator: TokenValidator) -> None:
    token = RSA.sign(claims(roles=["r"]))
    first = await validator.principal(token)
    assert await validator.principal(token) is first  # no second validation
    validator._cache[token] = (first, time.time() - 1)  # past exp + leeway
    assert await validator.principal(token) is not first


async def test_token_cache_is_bounded(tmp_path: Path) -> None:
    async for validator in validator_for(tmp_path, RSA, token_cache_size=3):
        tokens = [RSA.sign(claims(sub=f"u{i}")) for i in range(5)]
        for token in tokens:
            await validator.principal(token)
        assert list(validator._cache) == tokens[2:]


async def test_unusable_jwks_file_stops_startup(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    store = JwksStore(config(jwks_file="jwks.json"), tmp_path)
    with pytest.raises(JwksError, match="no usable signing key"):
        await store.start()
    (tmp_path / "jwks.json").write_text("{")
    with pytest.raises(JwksError, match="not a JSON document"):
        await JwksStore(config(jwks_file="jwks.json"), tmp_path).start()
    with pytest.raises(JwksError, match="No such file"):
        await JwksStore(config(jwks_file="absent.json"), tmp_path).start()


async def test_malformed_keys_are_skipped_not_fatal(tmp_path: Path) -> None:
    document = jwks(RSA)
    document["keys"][:0] = [
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "RSA", "kid": "no-modulus"},
        {"kty": "EC", "kid": "bad-curve", "crv": "P-999", "x": "AA", "y": "AA"},
        {"kty": "RSA", "use": "enc", **RSA.jwk(), "kid": "enc-key"},
        "not an object",
    ]
    (tmp_path / "jwks.json").write_text(json.dumps(document))
    store = JwksStore(config(jwks_file="jwks.json"), tmp_path)
    await store.start()
    try:
        assert store.keys is not None
        assert [k.kid for k in store.keys.keys] == ["rsa-1"]
        assert await TokenValidator(store.config, store).principal(RSA.sign(claims()))
    finally:
        await store.stop()


@pytest.mark.parametrize("alg", ["PS256", "RS512", "ES384", "EdDSA"])
async def test_other_asymmetric_algorithms(tmp_path: Path, alg: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private: Any
    if alg.startswith(("PS", "RS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES384":
        private = ec.generate_private_key(ec.SECP384R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    key = SigningKey("k", alg, private)
    async for validator in validator_for(tmp_path, key, algorithms=[alg]):
        assert (await validator.principal(key.sign(claims(sub=alg)))).subject == alg
    if alg == "ES384":  # a P-384 key never checks an ES256 token
        es256 = SigningKey("k", "ES256", ec.generate_private_key(ec.SECP256R1()))
        async for validator in validator_for(tmp_path, key, algorithms=["ES256", "ES384"]):
            assert "does not know" in await rejected(validator, es256.sign(claims()))


async def test_https_provider_checks_its_certificate(tmp_path: Path) -> None:
    tls, cert = self_signed_tls(tmp_path)
    server = JwksServer(jwks(RSA), tls=tls)
    try:
        for overrides, trusted in (
            ({}, False),  # system CAs do not know the self-signed certificate
            ({"ca_cert_path": str(cert)}, True),
            ({"verify_ssl": False}, True),
        ):
            store = JwksStore(config(jwks_url=server.url, **overrides), Path("."))
            await store.start()
            try:
                assert (store.keys is not None) is trusted, (overrides, store.problem)
                if not trusted:
                    assert store.problem and "CERTIFICATE_VERIFY_FAILED" in store.problem
            finally:
                await store.stop()
    finally:
        server.stop()
