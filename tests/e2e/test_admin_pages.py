"""The admin pages in a real browser (Playwright driving the system's Chromium) against the
stack as `codesuggest up` runs it: real portal, instance and gateway processes on loopback.

One stack and one browser for the module. Each page is screenshotted into a temporary
directory (`CODESUGGEST_SCREENSHOT_DIR` to choose it); the path is printed at the end.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from codesuggest.client.service import CompletionInput, SuggestionClient
from codesuggest.instance import admin, sign_in
from codesuggest.stack.runner import Stack
from e2e.stack_helpers import add_user, instance_session, running_stack

pytestmark = pytest.mark.slow
REALM = "self-managed"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a long enough password"
GO = CompletionInput("cmd/main.go", "package main\n\nfunc main() {\n\tfmt.", "\n}\n", "go")
PYTHON = CompletionInput("app.py", "import os\n\ndef read(path):\n    return open(", "\n", "python")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("admin-pages")) as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Page, str], None]]:
    chosen = os.environ.get("CODESUGGEST_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("admin-screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=folder / f"{name}.png", full_page=True)

    yield shot
    print(f"\nadmin page screenshots: {folder}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-packages as root")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    return context, context.new_page()


def url(stack: Stack, path: str = "") -> str:
    return f"{stack.summary()['instances'][REALM]['url']}{path}"


def sign_in_as(page: Page, stack: Stack, username: str, password: str) -> None:
    page.goto(url(stack, "/admin/sign_in"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


@pytest.fixture(scope="module")
def admin_page(stack: Stack, browser: Browser) -> Iterator[Page]:
    """Signed in as `codesuggest up`'s admin with the first password it printed."""
    body = stack.summary()["instances"][REALM]
    context, page = new_page(browser)
    sign_in_as(page, stack, body["admin_user"], body["admin_password"])
    expect(page).to_have_url(re.compile(r"/admin/dashboard$"))
    yield page
    context.close()


def csrf(page: Page) -> str:
    return page.locator("input[name=csrf_token]").first.input_value()


def completions(
    pat: str, stack: Stack, steps: list[tuple[CompletionInput, str | None]]
) -> list[str]:
    """One completion per step, then the step's feedback (`accept`, `reject` or None), as an
    editor reports it with its next request; returns the paths that served them."""

    async def go() -> list[str]:
        client = SuggestionClient(url(stack), pat)
        paths = []
        try:
            for request, feedback in steps:
                suggestion = await client.complete(request)
                paths.append(suggestion.path)
                model = (suggestion.model_engine, suggestion.model_name, suggestion.lang)
                if feedback == "accept":
                    client.telemetry.accept(*model)
                elif feedback == "reject":
                    client.telemetry.reject(*model)
        finally:
            await client.aclose()
        return paths

    # Playwright's sync API holds this thread's event loop: the client runs on its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def cells(page: Page, row: str) -> list[str]:
    return [cell.strip() for cell in page.locator(f"{row} td").all_inner_texts()]


def test_the_admin_signs_in_with_the_first_password_and_every_page_renders(
    stack, browser, admin_page, shots
):
    context, page = new_page(browser)
    page.goto(url(stack, "/admin/users"))
    expect(page).to_have_url(re.compile(r"/admin/sign_in\?next=/admin/users$"))
    shots(page, "01-sign-in")
    context.close()

    cookie = next(c for c in admin_page.context.cookies() if c["name"] == "codesuggest_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP on loopback; HTTPS: tests/instance

    admin_page.goto(url(stack, "/admin/dashboard"))
    expect(admin_page.locator("#empty-usage")).to_contain_text("No completions recorded")
    expect(admin_page.locator("#seat-utilization")).to_have_text("2 / 10")
    shots(admin_page, "02-dashboard-empty")
    for name, heading in (
        ("users", "Users"),
        ("seats", "Code suggestions seats"),
        ("settings", "Settings"),
    ):
        admin_page.goto(url(stack, f"/admin/{name}"))
        expect(admin_page.locator("h1")).to_have_text(heading)
        shots(admin_page, f"03-{name}")
    expect(admin_page.locator("#direct_connections")).to_be_checked()


def test_the_dashboard_shows_the_completions_and_feedback_an_editor_sent(stack, admin_page, shots):
    pat = add_user(stack, REALM, "dora")
    # Six completions in Go; the editor reports the first five with its following requests:
    # five shown, three accepted, one rejected.
    steps = [(GO, "accept"), (GO, "accept"), (GO, "accept"), (GO, "reject"), (GO, None)]
    paths = completions(pat, stack, [*steps, (GO, None)])
    assert paths == ["direct"] * 6

    deadline = time.monotonic() + 30
    while True:
        admin_page.goto(url(stack, "/admin/dashboard"))
        row = admin_page.locator("#languages tr[data-key=go]")
        user = admin_page.locator("#usage-users tr[data-username=dora] .completions")
        if (
            row.count()
            and user.count()
            and user.inner_text() == "6"
            and (cells(admin_page, "#languages tr[data-key=go]")[1] == "5")
        ):
            break
        assert time.monotonic() < deadline, "the usage events did not reach the dashboard"
        admin_page.wait_for_timeout(250)
    shots(admin_page, "04-dashboard")

    assert cells(admin_page, "#languages tr[data-key=go]") == ["go", "5", "3", "1", "60.0 %"]
    today = datetime.now(UTC).date().isoformat()
    assert cells(admin_page, f"#paths tr[data-day='{today}']") == [today, "6", "0"]
    expect(admin_page.locator("#total-completions")).to_have_text("6")
    expect(admin_page.locator("#direct-share")).to_have_text("100.0 %")

    charts = admin_page.evaluate(
        """() => Object.fromEntries(['chart-paths', 'chart-languages', 'chart-latency'].map(
             id => { const c = Chart.getChart(id);
                     return [id, { labels: c.data.labels,
                                   data: c.data.datasets.map(d => d.data) }]; }))"""
    )
    paths_chart = charts["chart-paths"]
    assert paths_chart["labels"] == [today] and paths_chart["data"] == [[6], [0]]
    languages = charts["chart-languages"]
    at = languages["labels"].index("go")
    assert [series[at] for series in languages["data"]] == [5, 3, 1, 60.0]
    latency = charts["chart-latency"]
    assert latency["labels"] == [today]
    p50, p95 = latency["data"][0][0], latency["data"][1][0]
    assert 0 < p50 <= p95
    shown = cells(admin_page, f"#latency tr[data-day='{today}']")[1:3]
    assert [float(value) for value in shown] == [p50, p95]


def test_a_user_made_on_the_pages_gets_a_pat_and_a_seat_and_direct_access_until_blocked(
    stack, admin_page, shots
):
    admin_page.goto(url(stack, "/admin/users"))
    admin_page.fill("#create-user input[name=username]", "ana")
    admin_page.click("#create-user button[type=submit]")
    expect(admin_page).to_have_url(re.compile(r"/admin/users/ana\?notice=user-created$"))
    expect(admin_page.locator("#seat")).to_have_text("no")

    admin_page.fill("#create-token input[name=name]", "ana's editor")
    admin_page.click("#create-token button[type=submit]")
    token = admin_page.locator("#new-token").inner_text().strip()
    assert token.startswith("glpat-")
    shots(admin_page, "05-user-new-token")
    admin_page.goto(url(stack, "/admin/users/ana"))
    assert token not in admin_page.content()  # shown once only
    expect(admin_page.locator("#tokens tbody tr")).to_have_count(1)

    direct_access = url(stack, "/api/v4/code_suggestions/direct_access")
    refused = httpx.post(direct_access, headers={"PRIVATE-TOKEN": token})
    assert refused.status_code == 403 and "seat" in refused.text

    admin_page.goto(url(stack, "/admin/seats"))
    held = int(admin_page.locator(".utilization strong").first.inner_text())
    admin_page.select_option("#assign-seat select[name=username]", "ana")
    admin_page.click("#assign-seat button[type=submit]")
    expect(admin_page.locator(".purchase tr[data-username=ana]")).to_have_count(1)
    expect(admin_page.locator(".utilization")).to_contain_text(f"{held + 1} of 10 seats assigned")
    expect(admin_page.locator(".utilization .licensed")).to_contain_text("the license allows 10")
    shots(admin_page, "06-seats")

    allowed = httpx.post(direct_access, headers={"PRIVATE-TOKEN": token})
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["token"] and allowed.json()["headers"]["x-gitlab-realm"] == REALM

    admin_page.goto(url(stack, "/admin/users/ana"))
    admin_page.click("#block")
    expect(admin_page.locator("#state")).to_have_text("blocked")
    blocked = httpx.post(direct_access, headers={"PRIVATE-TOKEN": token})
    assert blocked.status_code == 403 and "blocked" in blocked.text

    admin_page.click("#unblock")
    expect(admin_page.locator("#state")).to_have_text("active")
    admin_page.locator("#tokens form button").click()
    expect(admin_page.locator("#tokens tr[data-token-id] .state")).to_have_text("revoked")
    revoked = httpx.post(direct_access, headers={"PRIVATE-TOKEN": token})
    assert revoked.status_code == 401


def test_turning_direct_connections_off_sends_the_client_through_the_instance(stack, admin_page):
    pat = add_user(stack, REALM, "fallback-user")
    admin_page.goto(url(stack, "/admin/settings"))
    admin_page.uncheck("#direct_connections")
    admin_page.click("#settings button[type=submit]")
    expect(admin_page.locator(".notice")).to_have_text("Settings saved.")
    try:
        assert completions(pat, stack, [(PYTHON, None)]) == ["monolith"]
    finally:
        admin_page.check("#direct_connections")
        admin_page.click("#settings button[type=submit]")
        expect(admin_page.locator("#direct_connections")).to_be_checked()
    assert completions(pat, stack, [(PYTHON, None)]) == ["direct"]


def test_the_context_editors_may_send_is_what_the_settings_page_says(stack, admin_page):
    pat = add_user(stack, REALM, "context-user")
    query = (
        "{ currentUser { codeSuggestionsContexts } "
        'flag: featureFlagEnabled(name: "code_suggestions_context") }'
    )

    def asked() -> tuple[list[str], bool]:
        reply = httpx.post(
            url(stack, "/api/graphql"),
            json={"query": query},
            headers={"Authorization": f"Bearer {pat}"},
        )
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        return data["currentUser"]["codeSuggestionsContexts"], data["flag"]

    assert asked() == (["open_tabs", "imports"], True)
    admin_page.goto(url(stack, "/admin/settings"))
    admin_page.uncheck("#context-open_tabs")
    admin_page.uncheck("#context-imports")
    admin_page.click("#settings button[type=submit]")
    expect(admin_page.locator(".notice")).to_have_text("Settings saved.")
    assert asked() == ([], False)
    admin_page.check("#context-open_tabs")
    admin_page.click("#settings button[type=submit]")
    expect(admin_page.locator("#context-open_tabs")).to_be_checked()
    expect(admin_page.locator("#context-imports")).not_to_be_checked()
    assert asked() == (["open_tabs"], True)


def test_a_signed_out_visitor_and_a_non_admin_are_refused(stack, browser, shots):
    with httpx.Client(base_url=url(stack)) as http:
        for path in ("/admin/users", "/admin/dashboard", "/admin/users/admin"):
            reply = http.get(path)
            assert reply.status_code == 303 and "/admin/sign_in" in reply.headers["location"]
        posted = http.post("/admin/users", data={"username": "intruder"})
        assert posted.status_code == 303
    with instance_session(stack, REALM) as session:
        assert "intruder" not in {u.username for u in admin.list_users(session)}

    with instance_session(stack, REALM) as session:
        sign_in.set_password(session, "demo", PASSWORD)  # the demo user is not an admin
    context, page = new_page(browser)
    sign_in_as(page, stack, "demo", PASSWORD)
    expect(page.locator("[role=alert]")).to_contain_text("administrators only")
    shots(page, "07-not-an-admin")
    response = page.goto(url(stack, "/admin/users"))
    assert response is not None and response.url.endswith("/admin/sign_in?next=/admin/users")
    assert not [c for c in context.cookies() if c["name"] == "codesuggest_admin"]
    context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(stack, admin_page, shots):
    admin_page.goto(url(stack, "/admin/users"))
    admin_page.evaluate("document.querySelector('#create-user input[name=csrf_token]').remove()")
    admin_page.fill("#create-user input[name=username]", "no-csrf")
    admin_page.click("#create-user button[type=submit]")
    expect(admin_page.locator("[role=alert]")).to_contain_text("security token")
    shots(admin_page, "08-csrf-refused")
    forged = admin_page.request.post(
        url(stack, "/admin/users"), form={"username": "forged", "csrf_token": "guess"}
    )
    assert forged.status == 403
    admin_page.goto(url(stack, "/admin/users"))
    genuine = admin_page.request.post(
        url(stack, "/admin/users"),
        form={"username": "genuine", "csrf_token": csrf(admin_page)},
        max_redirects=0,
    )
    assert genuine.status == 303
    with instance_session(stack, REALM) as session:
        names = {u.username for u in admin.list_users(session)}
    assert "genuine" in names and not names & {"no-csrf", "forged"}


def test_five_wrong_passwords_lock_sign_in_even_for_the_right_one(stack, browser, shots):
    with instance_session(stack, REALM) as session:
        admin.create_user(session, "locky", datetime.now(UTC), admin=True)
        sign_in.set_password(session, "locky", PASSWORD)
    context, page = new_page(browser)
    for attempt in range(1, 6):
        sign_in_as(page, stack, "locky", f"wrong password {attempt}")
        expected = "locked" if attempt == 5 else "Wrong username or password"
        expect(page.locator("[role=alert]")).to_contain_text(expected)
    sign_in_as(page, stack, "locky", PASSWORD)
    expect(page.locator("[role=alert]")).to_contain_text("sign-in is locked for 15 min")
    shots(page, "09-locked")
    assert not [c for c in context.cookies() if c["name"] == "codesuggest_admin"]
    context.close()
