"""Auth benchmark: token verification, minting, and the auth layer's cost per request.

Prints one JSON object. Run: .venv/bin/python bench/auth.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import Depends

from codesuggest.gateway.app import create_app
from codesuggest.gateway.auth import requires
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.revocations import FileBackend, Revocations
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from codesuggest.tokens import LocalKeySet, PrivateKey, Signer, SystemClock, Verifier

ISS = "http://portal.bench"
INSTANCE = "bench-instance"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples_s: list[float], unit: float) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples_s) * unit, 2),
        "p99": round(pct(samples_s, 0.99) * unit, 2),
    }


async def verification(n: int) -> dict[str, object]:
    key = PrivateKey.generate()
    signer = Signer(key, ISS)
    keys = LocalKeySet(ISS, [key.public])
    uncached = Verifier([keys], "gitlab-ai-gateway", cache_size=0)
    cached = Verifier([keys], "gitlab-ai-gateway")
    tokens, mint = [], []
    for _ in range(n):
        t = time.perf_counter()
        token, _ = signer.mint(subject=INSTANCE, audience=["gitlab-ai-gateway"], lifetime=3600)
        mint.append(time.perf_counter() - t)
        tokens.append(token)
    first, repeat = [], []
    for token in tokens:
        t = time.perf_counter()
        await uncached.verify(token)
        first.append(time.perf_counter() - t)
    for token in tokens:
        await cached.verify(token)
    for token in tokens:
        t = time.perf_counter()
        await cached.verify(token)
        repeat.append(time.perf_counter() - t)
    return {
        "verify_us_first_sight": summary(first, 1e6),
        "verify_us_seen_before": summary(repeat, 1e6),
        "mint_us": summary(mint, 1e6),
    }


async def revocation_check(n: int, entries: int = 10_000) -> dict[str, object]:
    """The hot-path lookup of revoked user tokens, with `entries` revocations held (about what a
    large instance revokes in an hour), for a user with and without one."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Revocations(SystemClock(), 3660, FileBackend(Path(tmp) / "revocations.db"))
        now = int(time.time())
        for i in range(entries):
            await store.add("bench-instance", f"user-{i}", now, f"push-{i}")
        await store.aclose()
    revoked = {"sub": "user-7", "gitlab_instance_id": "bench-instance", "iat": now - 10}
    untouched = {"sub": "someone", "gitlab_instance_id": "bench-instance", "iat": now - 10}
    samples: dict[str, list[float]] = {"revoked": [], "not_revoked": []}
    for _ in range(n):
        for name, claims in (("revoked", revoked), ("not_revoked", untouched)):
            t = time.perf_counter()
            store.is_revoked(claims)
            samples[name].append(time.perf_counter() - t)
    assert store.is_revoked(revoked) and not store.is_revoked(untouched)
    return {
        "revocation_entries": entries,
        "revocation_check_us": {name: summary(s, 1e6) for name, s in samples.items()},
    }


async def auth_layer(n: int) -> dict[str, object]:
    """Same empty handler with and without the auth dependency, in process (ASGI), interleaved."""
    key = PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        settings = GatewaySettings(
            data_dir=Path(tmp), trusted_issuers=[TrustedIssuer(url=ISS, kind="portal")]
        )
        app = create_app(settings)

        @app.post("/bench/open")
        async def open_route() -> dict:
            return {}

        @app.post("/bench/protected")
        async def protected(
            caller: Caller = Depends(requires("complete_code", user_tokens=True, refusal="no")),
        ) -> dict:
            return {}

        async with app.router.lifespan_context(app):
            # Trust the bench issuer without a network fetch: its keys are set directly.
            remote = app.state.ctx.trust.remote[0]
            remote.keys = {key.kid: key.public}
            token, _ = Signer(key, ISS).mint(
                subject=INSTANCE,
                audience=["gitlab-ai-gateway"],
                lifetime=3600,
                extra={
                    "gitlab_realm": "self-managed",
                    "gitlab_instance_id": INSTANCE,
                    "scopes": ["complete_code"],
                },
            )
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Gitlab-Authentication-Type": "oidc",
                "X-Gitlab-Instance-Id": INSTANCE,
                "X-Gitlab-Realm": "self-managed",
            }
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for _ in range(200):  # warm-up
                    await client.post("/bench/protected", headers=headers)
                    await client.post("/bench/open", headers=headers)
                open_t, prot_t = [], []
                for _ in range(n):
                    t = time.perf_counter()
                    r = await client.post("/bench/open", headers=headers)
                    open_t.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    r = await client.post("/bench/protected", headers=headers)
                    prot_t.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
    open_p50, prot_p50 = statistics.median(open_t), statistics.median(prot_t)
    return {
        "open_route_ms": summary(open_t, 1e3),
        "protected_route_ms": summary(prot_t, 1e3),
        "auth_layer_added_ms_p50": round((prot_p50 - open_p50) * 1e3, 3),
        "protected_requests_per_s_single_client": round(1 / prot_p50),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    result = {"bench": "auth", "n": args.n, "library": "PyJWT (PyJWS, RS256) + cryptography"}
    result.update(await verification(args.n))
    result.update(await revocation_check(args.n))
    result.update(await auth_layer(args.n))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
