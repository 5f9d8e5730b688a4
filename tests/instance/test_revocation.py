"""Access taken away takes effect within a minute: block, unseat and PAT revocation make the
user's live token refused at both of two gateway replicas sharing Redis, in both realms, over
SQLite and PostgreSQL; forged and replayed pushes are refused (docs/gateway.md "Revocation").

Real servers on loopback: portal, instance, two gateway replicas, Redis. The propagation times
measured here are real (no clock moved); the instance's clock only moves to skip a retry
back-off while the gateway is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
import redis
from sqlalchemy import select

from codesuggest.client.service import CompletionFailed, CompletionInput, SuggestionClient
from codesuggest.gateway.app import create_app as create_gateway
from codesuggest.gateway.settings import TrustedIssuer
from codesuggest.instance import revocations
from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.models import RevocationOutbox
from codesuggest.instance.store import application_settings
from codesuggest.tokens import PrivateKey, Signer
from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME
from instance.harness import STACK_PARAMS, Stack, database_url, free_port, start_stack, wait_ready
from support.issuer import Issuer
from support.servers import ServerThread

REDIS = "redis://127.0.0.1:6379/0"
GUARANTEE = 60.0
PUSH_PATH = "/v1/code/user_token_revocations"
SAMPLE = {
    "prompt_version": 1,
    "current_file": {
        "file_name": "app/files.py",
        "content_above_cursor": "def add(a, b):\n    return ",
        "content_below_cursor": "\n",
    },
}


@dataclass
class Replicated:
    stack: Stack
    replica: ServerThread
    replica_app: object
    forger: Issuer
    prefix: str

    @property
    def gateways(self) -> list[str]:
        return [self.stack.gateway.url, self.replica.url]


@pytest.fixture(scope="module", params=STACK_PARAMS, ids=lambda p: f"{p[0]}-{p[1]}")
def rs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicated]:
    backend, realm = request.param
    tmp = tmp_path_factory.mktemp(f"revoke-{backend}-{realm}")
    prefix = f"codesuggest:test:revoke:{uuid.uuid4().hex[:8]}:"
    forger = Issuer().start()
    redis_options = {"redis_url": REDIS, "redis_prefix": prefix, "revocation_sync_interval": 0.5}
    with database_url(backend, tmp) as url:
        stack = start_stack(
            tmp,
            url,
            realm,
            backend,
            gateway_options=redis_options,
            extra_issuers=(TrustedIssuer(url=forger.url, kind="portal"),),
            revocation_poll_interval=0.2,
        )
        assert stack.gateway_settings is not None
        port = free_port()
        replica_settings = stack.gateway_settings.model_copy(
            update={
                "public_url": f"http://127.0.0.1:{port}",
                "data_dir": tmp / "gateway-b",
                "signing_key_file": tmp / "gateway" / "signing-key.pem",
            }
        )
        replica_app = create_gateway(replica_settings)
        replica = ServerThread(replica_app, port=port).start()
        wait_ready(replica.url)
        try:
            yield Replicated(stack, replica, replica_app, forger, prefix)
        finally:
            replica.stop()
            stack.close()
            forger.stop()
            client = redis.Redis.from_url(REDIS)
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()


def admin_pat(stack: Stack) -> str:
    if not hasattr(stack, "_admin_pat"):
        stack._admin_pat = stack.user(admin_=True)  # type: ignore[attr-defined]
    return stack._admin_pat  # type: ignore[attr-defined]


def admin_call(stack: Stack, method: str, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    stack.clock.set(time.time())
    response = stack.http.request(
        method, path, headers={"PRIVATE-TOKEN": admin_pat(stack)}, **kwargs
    )
    assert response.status_code in (201, 204), response.text
    return response


def details(stack: Stack, pat: str) -> dict:
    stack.clock.set(time.time())
    response = stack.direct_access(pat)
    assert response.status_code == 201, response.text
    return response.json()


def complete(gateway: str, body: dict) -> int:
    headers = {**body["headers"], "Authorization": f"Bearer {body['token']}"}
    reply = httpx.post(
        f"{gateway}/ai/v2/code/completions", json=SAMPLE, headers=headers, timeout=15
    )
    assert reply.status_code in (200, 401), reply.text
    return reply.status_code


def served_by_both(rs: Replicated, body: dict) -> bool:
    return all(complete(g, body) == 200 for g in rs.gateways)


def refused_by_both_within(rs: Replicated, body: dict, started: float) -> float:
    """Seconds from `started` until both replicas refuse the token (fails past 60 s)."""
    pending = set(rs.gateways)
    while pending:
        pending = {g for g in pending if complete(g, body) != 401}
        elapsed = time.monotonic() - started
        assert elapsed < GUARANTEE, f"still accepted after {elapsed:.1f}s by {pending}"
        if pending:
            time.sleep(0.05)
    return time.monotonic() - started


def live_void_before(stack: Stack, uid: int) -> int:
    with stack.store.session() as s:
        value = revocations.void_before(s, uid)
    assert value is not None
    return value


def user_id(stack: Stack, pat: str) -> int:
    return stack.http.get("/api/v4/user", headers={"PRIVATE-TOKEN": pat}).json()["id"]


def purchase_id(stack: Stack) -> int:
    listing = stack.http.get(
        "/api/v4/add_on_purchases", headers={"PRIVATE-TOKEN": admin_pat(stack)}
    )
    return listing.json()[0]["id"]


def block(stack: Stack, uid: int, _pat: str) -> Callable[[], None]:
    admin_call(stack, "POST", f"/api/v4/users/{uid}/block")
    return lambda: admin_call(stack, "POST", f"/api/v4/users/{uid}/unblock") and None


def unseat(stack: Stack, uid: int, _pat: str) -> Callable[[], None]:
    pid = purchase_id(stack)
    admin_call(stack, "DELETE", f"/api/v4/add_on_purchases/{pid}/assignments/{uid}")
    return lambda: (
        admin_call(
            stack, "POST", f"/api/v4/add_on_purchases/{pid}/assignments", json={"user_id": uid}
        )
        and None
    )


def revoke_pat(stack: Stack, uid: int, pat: str) -> Callable[[], None]:
    token_id = stack.http.get(
        "/api/v4/personal_access_tokens", headers={"PRIVATE-TOKEN": pat}
    ).json()[0]["id"]
    admin_call(stack, "DELETE", f"/api/v4/personal_access_tokens/{token_id}")
    spare = stack.http.post(
        f"/api/v4/users/{uid}/personal_access_tokens",
        json={"name": "spare", "scopes": ["api"]},
        headers={"PRIVATE-TOKEN": admin_pat(stack)},
    ).json()["token"]
    revoke_pat.spare = spare  # type: ignore[attr-defined]
    return lambda: None


@pytest.mark.parametrize("take_away", [block, unseat, revoke_pat])
def test_taking_access_away_refuses_the_live_token_at_both_replicas_within_a_minute(
    rs: Replicated, take_away, record_property
) -> None:
    stack = rs.stack
    pat, bystander = stack.user(), stack.user()
    uid = user_id(stack, pat)
    live, others = details(stack, pat), details(stack, bystander)
    assert served_by_both(rs, live) and served_by_both(rs, others)

    started = time.monotonic()
    give_back = take_away(stack, uid, pat)
    elapsed = refused_by_both_within(rs, live, started)
    record_property("propagation_seconds", round(elapsed, 3))
    assert served_by_both(rs, others), "another user's token was refused"

    give_back()
    # Tokens of the revocation's second are void too; the instance waits out that second on
    # a real clock, the test's manual clock has to be stepped past it.
    time.sleep(max(0.0, live_void_before(stack, uid) - time.time()))
    fresh = details(stack, getattr(revoke_pat, "spare", pat) if take_away is revoke_pat else pat)
    assert fresh["token"] != live["token"]
    assert served_by_both(rs, fresh)
    assert complete(rs.replica.url, live) == 401  # the old token stays void


def test_a_push_made_while_the_gateway_is_down_lands_when_it_returns(rs: Replicated) -> None:
    stack = rs.stack
    pat = stack.user()
    uid = user_id(stack, pat)
    live = details(stack, pat)
    assert served_by_both(rs, live)
    stack.gateway.stop()  # the replica the instance pushes to
    try:
        admin_call(stack, "POST", f"/api/v4/users/{uid}/block")

        def attempted() -> bool:
            with stack.store.session() as s:
                row = s.scalar(select(RevocationOutbox).where(RevocationOutbox.user_id == uid))
            return row is not None and row.delivered_at is None and row.attempts >= 1

        deadline = time.monotonic() + 20
        while not attempted():
            assert time.monotonic() < deadline, "the push was never attempted"
            time.sleep(0.05)
        assert complete(rs.replica.url, live) == 200  # nothing landed: the other replica serves
        # An instance restart loses nothing: the revocation waits in the database.
        stack.instance.stop()
        stack.instance.start()
    finally:
        # A new gateway process on the same address (the embedded engine does not restart).
        assert stack.gateway_settings is not None
        app = create_gateway(stack.gateway_settings)
        stack.gateway = ServerThread(app, port=stack.gateway.port).start()
    wait_ready(stack.gateway.url)
    started = time.monotonic()
    stack.clock.advance(stack.settings.revocation_retry_max)  # skip the back-off
    refused_by_both_within(rs, live, started)
    with stack.store.session() as s:
        assert revocations.pending(s) == 0


def push_headers(token: str, instance_id: str, realm: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Instance-Id": instance_id,
        "X-Gitlab-Realm": realm,
    }


def instance_token(stack: Stack) -> tuple[str, InstanceInfo]:
    with stack.store.session() as s:
        info = InstanceInfo.of(application_settings(s))
        token = stack.ctx.instance_tokens.for_gateway(s, info)
    assert token is not None
    return token, info


def test_forged_and_replayed_pushes_are_refused(rs: Replicated) -> None:
    stack = rs.stack
    pat = stack.user()
    live = details(stack, pat)
    gid = live["headers"]["x-gitlab-global-user-id"]
    token, info = instance_token(stack)
    me, realm = info.instance_uuid, info.realm
    other = str(uuid.uuid4())
    now = int(time.time())
    push = {"instance_id": me, "global_user_id": gid, "issued_before": now + 1}
    gateway = stack.gateway.url

    def send(body: dict, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(gateway + PUSH_PATH, json=body, headers=headers, timeout=10)

    refusals = {
        "no token": (send({**push, "id": "a"}, {}), 401),
        "forged signature": (
            send(
                {**push, "id": "b"},
                push_headers(
                    Signer(PrivateKey.generate(), rs.forger.url).mint(
                        subject=me,
                        audience=[DEFAULT_SERVICE_NAME],
                        lifetime=600,
                        extra={
                            "gitlab_realm": "self-managed",
                            "gitlab_instance_id": me,
                            "scopes": ["complete_code"],
                        },
                    )[0],
                    me,
                    "self-managed",
                ),
            ),
            401,
        ),
        "another instance's token": (
            send(
                {**push, "id": "c"},
                push_headers(rs.forger.instance_token(other), other, "self-managed"),
            ),
            403,
        ),
        "a token without complete_code": (
            send(
                {**push, "id": "d"},
                push_headers(
                    rs.forger.instance_token(me, scopes=["generate_code"]), me, "self-managed"
                ),
            ),
            403,
        ),
        "a user token": (
            send(
                {**push, "id": "e"},
                {**live["headers"], "Authorization": f"Bearer {live['token']}"},
            ),
            403,
        ),
        "a time in the future": (
            send(
                {**push, "id": "f", "issued_before": now + 3600},
                push_headers(token, me, realm),
            ),
            422,
        ),
        "an unknown field": (
            send({**push, "id": "g", "user": "x"}, push_headers(token, me, realm)),
            422,
        ),
    }
    for name, (response, status) in refusals.items():
        assert response.status_code == status, (name, response.text)

    # Another instance naming this user voids nothing of ours: stored under its own id.
    theirs = send(
        {"id": "h", "instance_id": other, "global_user_id": gid, "issued_before": now + 1},
        push_headers(rs.forger.instance_token(other), other, "self-managed"),
    )
    assert theirs.status_code == 200, theirs.text
    replica_store = rs.replica_app.state.ctx.revocations  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while replica_store._void.get((other, gid)) is None:
        assert time.monotonic() < deadline, "the replica never learned of the push"
        time.sleep(0.05)
    assert served_by_both(rs, live)

    # The instance's own push lands once; the same push again is refused and changes nothing.
    past = {**push, "id": str(uuid.uuid4()), "issued_before": now - 600}
    first = send(past, push_headers(token, me, realm))
    assert first.status_code == 200, first.text
    replay = send(past, push_headers(token, me, realm))
    assert replay.status_code == 409, replay.text
    assert replay.json() == {"detail": "Revocation already received"}
    assert served_by_both(rs, live)
    claims = jwt.decode(live["token"], options={"verify_signature": False})
    assert claims["iat"] >= now - 600


async def test_a_refused_token_costs_the_client_one_direct_access_ending_not_authorized(
    rs: Replicated,
) -> None:
    stack = rs.stack
    pat = stack.user()
    uid = user_id(stack, pat)
    seen: list[str] = []
    client = SuggestionClient(
        stack.instance.url, pat, on_status=lambda state, _m: seen.append(state)
    )
    completion = CompletionInput(
        file_name="app/files.py",
        content_above_cursor="def add(a, b):\n    return ",
        content_below_cursor="\n",
    )
    try:
        stack.clock.set(time.time())
        assert (await client.complete(completion)).path == "direct"
        live = {"token": client.details.details.token, "headers": client.details.details.headers}
        started = time.monotonic()
        admin_call(stack, "POST", f"/api/v4/users/{uid}/block")
        await asyncio.to_thread(refused_by_both_within, rs, live, started)
        calls = client.details.stats.calls
        with pytest.raises(CompletionFailed) as failed:
            await client.complete(completion)
        assert client.details.stats.calls == calls + 1  # one direct_access, no loop
        assert client.details.stats.last_status == 403
        assert failed.value.state == "unauthorized" and seen[-1] == "unauthorized", seen
    finally:
        await client.aclose()
