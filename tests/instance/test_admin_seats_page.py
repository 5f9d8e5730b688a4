"""The seats page's forms over HTTP against a real instance server on loopback: purchase,
assign and unassign, each answered with the page and its notice, and a refusal shown on the
page with a 400."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from codesuggest.instance import seats
from instance.test_admin_sign_in import PASSWORD, Running, hidden, post_sign_in, serving


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving(tmp_path_factory.mktemp("admin-seats")) as started:
        yield started


def submit(http: httpx.Client, action: str, **fields: str) -> httpx.Response:
    token = hidden(http.get("/admin/seats").text, "csrf_token")
    return http.post(f"/admin/seats/{action}", data={"csrf_token": token, **fields})


def holders(running: Running) -> set[str]:
    with running.ctx.store.session() as session:
        return {name for entry in seats.list_seats(session) for name in entry["assigned"]}


def test_seats_are_purchased_assigned_and_unassigned_through_the_forms(running: Running) -> None:
    name = running.user("seat-admin")
    running.user("seat-holder", is_admin=False)
    with httpx.Client(base_url=running.url) as http:
        assert post_sign_in(http, name, PASSWORD).status_code == 303
        bought = submit(http, "purchase", seats="2")
        assert (bought.status_code, bought.headers["location"]) == (
            303,
            "/admin/seats?notice=purchased",
        )
        assigned = submit(http, "assign", username="seat-holder")
        assert assigned.headers["location"] == "/admin/seats?notice=assigned"
        assert "Seat assigned." in http.get(assigned.headers["location"]).text
        assert holders(running) == {"seat-holder"}
        unassigned = submit(http, "unassign", username="seat-holder")
        assert unassigned.headers["location"] == "/admin/seats?notice=unassigned"
        assert holders(running) == set()
        refused = submit(http, "unassign", username="nobody-here")
        assert refused.status_code == 400
        assert "nobody-here" in refused.text
