from __future__ import annotations

import jwt
import pytest

from codesuggest.tokens import LocalKeySet, ManualClock, PrivateKey, Signer, Verifier, errors

ISS = "http://issuer.test"
AUD = "gitlab-ai-gateway"


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    clock = ManualClock(1_800_000_000)
    key = PrivateKey.generate()
    keys = LocalKeySet(ISS, [key.public])
    return clock, key, keys, Verifier([keys], AUD, leeway=30, clock=clock)


async def test_mint_claims(setup) -> None:  # type: ignore[no-untyped-def]
    clock, key, _, verifier = setup
    token, claims = Signer(key, ISS, clock).mint(
        subject="s", audience=[AUD], lifetime=3600, extra={"x": 1}
    )
    assert claims["iat"] == 1_800_000_000 and claims["nbf"] == 1_800_000_000 - 5
    assert claims["exp"] == 1_800_003_600 and claims["jti"]
    assert (await verifier.verify(token))["x"] == 1


async def test_expiry_with_leeway_and_cache(setup) -> None:  # type: ignore[no-untyped-def]
    clock, key, _, verifier = setup
    token, _ = Signer(key, ISS, clock).mint(subject="s", audience=AUD, lifetime=60)
    await verifier.verify(token)
    clock.advance(60 + 30)
    await verifier.verify(token)  # exactly at the leeway edge, from the cache
    clock.advance(1)
    with pytest.raises(errors.Expired):
        await verifier.verify(token)


async def test_iat_in_future(setup) -> None:  # type: ignore[no-untyped-def]
    clock, key, _, verifier = setup
    future = ManualClock(clock.now() + 120)
    token, _ = Signer(key, ISS, future).mint(subject="s", audience=AUD, lifetime=600)
    with pytest.raises(errors.NotYetValid):
        await verifier.verify(token)


async def test_cached_token_refused_once_key_is_withdrawn(setup) -> None:  # type: ignore[no-untyped-def]
    clock, key, keys, verifier = setup
    token, _ = Signer(key, ISS, clock).mint(subject="s", audience=AUD, lifetime=600)
    await verifier.verify(token)
    keys.keys.clear()
    with pytest.raises(errors.UnknownKey):
        await verifier.verify(token)


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "aud"])
async def test_required_claims(setup, missing: str) -> None:  # type: ignore[no-untyped-def]
    clock, key, _, verifier = setup
    claims = {
        "iss": ISS,
        "sub": "s",
        "aud": AUD,
        "iat": int(clock.now()),
        "exp": int(clock.now()) + 60,
    }
    del claims[missing]
    token = jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(errors.TokenError) as info:
        await verifier.verify(token)
    assert info.value.reason in {"missing_claim", "bad_audience"}


async def test_other_rsa_algorithms_refused(setup) -> None:  # type: ignore[no-untyped-def]
    clock, key, _, verifier = setup
    claims = {
        "iss": ISS,
        "sub": "s",
        "aud": AUD,
        "iat": int(clock.now()),
        "exp": int(clock.now()) + 60,
    }
    for alg in ("RS512", "PS256"):
        token = jwt.encode(claims, key.key, algorithm=alg, headers={"kid": key.kid})
        with pytest.raises(errors.BadAlgorithm):
            await verifier.verify(token)
