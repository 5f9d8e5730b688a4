"""Revoked user tokens at a gateway without Redis (entries in a SQLite file in the data
directory, shared by the worker processes of one machine), on a manual clock: a pushed
revocation refuses the user's older tokens and nothing else, reaches a second process on the
same data directory, survives a restart, lives one token lifetime; a Redis that is down answers
the push 503 so the instance retries."""

from __future__ import annotations

import time
import uuid

import pytest

from codesuggest.gateway.settings import TrustedIssuer
from codesuggest.tokens import ManualClock
from gateway.conftest import INSTANCE_ID, GatewayEnv, start_gateway
from gateway.test_authority import mint, user_headers
from support.issuer import Issuer, instance_headers, wait_until

PUSH = "/v1/code/user_token_revocations"


def push(gw: GatewayEnv, user: str, issued_before: float, push_id: str | None = None):  # type: ignore[no-untyped-def]
    token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    body = {
        "id": push_id or str(uuid.uuid4()),
        "instance_id": INSTANCE_ID,
        "global_user_id": user,
        "issued_before": int(issued_before),
    }
    with gw.client() as c:
        return c.post(PUSH, json=body, headers=instance_headers(token, INSTANCE_ID))


def user_token(gw: GatewayEnv, user: str) -> str:
    response = mint(gw, gw.portal.instance_token(INSTANCE_ID, clock=gw.clock), user=user)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def accepted(gw: GatewayEnv, token: str, user: str) -> int:
    with gw.client() as c:
        return c.post("/test/protected", headers=user_headers(token, user)).status_code


def test_a_revocation_refuses_older_tokens_of_that_user_only(gw: GatewayEnv) -> None:
    old, other = user_token(gw, "rv-alice"), user_token(gw, "rv-bob")
    gw.clock.advance(1)
    stored = push(gw, "rv-alice", gw.clock.now())
    assert stored.status_code == 200, stored.text
    assert accepted(gw, old, "rv-alice") == 401
    assert accepted(gw, other, "rv-bob") == 200
    gw.clock.advance(1)
    assert accepted(gw, user_token(gw, "rv-alice"), "rv-alice") == 200  # issued after T


def test_saas_user_tokens_are_revoked_too(gw: GatewayEnv) -> None:
    token = gw.saas.user_token("rv-saas", INSTANCE_ID, clock=gw.clock)
    headers = instance_headers(token, INSTANCE_ID, "saas") | {"X-Gitlab-Global-User-Id": "rv-saas"}
    with gw.client() as c:
        assert c.post("/test/protected", headers=headers).status_code == 200
        gw.clock.advance(1)
        assert push(gw, "rv-saas", gw.clock.now()).status_code == 200
        assert c.post("/test/protected", headers=headers).status_code == 401


def test_an_entry_lives_one_token_lifetime(gw: GatewayEnv) -> None:
    assert push(gw, "rv-carol", gw.clock.now()).status_code == 200
    store = gw.gateway.app.state.ctx.revocations
    assert (INSTANCE_ID, "rv-carol") in store._void
    gw.clock.advance(gw.settings.user_token_lifetime + 2 * gw.settings.leeway + 1)
    wait_until(lambda: (INSTANCE_ID, "rv-carol") not in store._void, what="the entry dropped")


def test_the_same_push_twice_is_refused(gw: GatewayEnv) -> None:
    push_id = str(uuid.uuid4())
    assert push(gw, "rv-erin", gw.clock.now() - 60, push_id).status_code == 200
    again = push(gw, "rv-erin", gw.clock.now() - 60, push_id)
    assert again.status_code == 409 and again.json() == {"detail": "Revocation already received"}


def test_a_second_process_on_the_data_directory_refuses_it_too_and_a_restart_keeps_it(
    gw: GatewayEnv,
) -> None:
    token = user_token(gw, "rv-gina")
    gw.clock.advance(1)
    assert push(gw, "rv-gina", gw.clock.now()).status_code == 200
    for _ in range(2):  # a worker beside the first one; then one started after it
        server, _settings = start_gateway(
            gw.settings.data_dir, gw.settings.trusted_issuers, gw.clock
        )
        try:
            other = GatewayEnv(gw.portal, gw.saas, server, gw.clock, gw.settings)
            with other.client() as c:
                wait_until(lambda: c.get("/monitoring/ready").status_code == 200)
            deadline = time.monotonic() + 20
            while accepted(other, token, "rv-gina") != 401:
                assert time.monotonic() < deadline, "the other process never refused the token"
                time.sleep(0.05)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def gw_redis_down(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    portal = Issuer("self-managed").start()
    clock = ManualClock()
    server, settings = start_gateway(
        tmp_path_factory.mktemp("gateway-redis-down"),
        [TrustedIssuer(url=portal.url, kind="portal")],
        clock,
        redis_url="redis://127.0.0.1:1/0",  # nothing listens on port 1
    )
    yield GatewayEnv(portal, portal, server, clock, settings)
    server.stop()
    portal.stop()


def test_redis_down_answers_503_so_the_instance_retries(gw_redis_down: GatewayEnv) -> None:
    response = push(gw_redis_down, "rv-frank", gw_redis_down.clock.now())
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"


def push_raw(gw: GatewayEnv, raw: str | bytes):  # type: ignore[no-untyped-def]
    token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    headers = instance_headers(token, INSTANCE_ID) | {"Content-Type": "application/json"}
    with gw.client() as c:
        return c.post(PUSH, content=raw, headers=headers)


def a_revocation(issued_before: str) -> str:
    return (
        f'{{"id": "{uuid.uuid4()}", "instance_id": "{INSTANCE_ID}", '
        f'"global_user_id": "rv-hostile", "issued_before": {issued_before}}}'
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"id": "x", ', "not valid JSON"),
        (b'{"id": "\xff\xfe"}', "not valid UTF-8"),
        (a_revocation("NaN"), "finite number"),
        (a_revocation("-Infinity"), "finite number"),
        (a_revocation("1e999"), "finite number"),
        ('{"deep": ' + "[" * 3000 + "]" * 3000 + "}", "nested more than"),
        (a_revocation("1").replace("}", ', "extra": NaN}'), "Extra inputs"),
    ],
)
def test_a_body_that_is_not_strict_json_is_a_422_and_stores_nothing(
    gw: GatewayEnv, raw: str | bytes, says: str
) -> None:
    """The same strict parser and the same 422 shape as the completion routes."""
    before = len(gw.gateway.app.state.ctx.revocations)
    response = push_raw(gw, raw)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][0] == "body"
    assert says in detail[0]["msg"]
    assert len(gw.gateway.app.state.ctx.revocations) == before


def test_a_body_of_the_wrong_shape_names_the_field(gw: GatewayEnv) -> None:
    response = push_raw(gw, a_revocation('"yesterday"'))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "issued_before"] and "input" not in error
    unknown = push_raw(gw, a_revocation("1").replace("}", ', "reason": "left"}'))
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "reason"]
