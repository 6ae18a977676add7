"""Who gets into the console and what they see: sign-in (wrong password, slow-down and lock-out,
audited), sign-out, CSRF on every form, and isolation between operators' projects — in a real
browser against the real gateway."""

from __future__ import annotations

import re
import time

import pytest
from playwright.async_api import expect

from api_gateway.console.sessions import FAILURE_PAUSE_SECONDS, LOCK_AFTER_FAILURES
from store.db import open_pool
from tests.console.conftest import Console, make_operator

pytestmark = pytest.mark.e2e


async def _audit_actions(database_url: str, email: str) -> list[str]:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT action FROM audit_outbox WHERE data->>'operator_email' = %s ORDER BY seq", (email,)
            )).fetchall()
    finally:
        await pool.close()
    return [row["action"] for row in rows]


async def _try_password(console: Console, email: str, password: str) -> None:
    await console.page.get_by_label("Email").fill(email)
    await console.page.get_by_label("Password").fill(password)
    await console.page.get_by_role("button", name="Sign in").click()
    await console.page.wait_for_load_state()


async def test_sign_in_refuses_wrong_passwords_then_locks_out_and_sign_out_ends_the_session(
        console_factory, database_url: str) -> None:
    operator = await make_operator(database_url)
    console: Console = await console_factory()
    page = console.page

    # Signed out, a page sends you to sign in, and back after.
    assert await console.visit("/projects", "redirected-to-sign-in") == 200
    assert "/sign-in" in page.url

    started = time.monotonic()
    await _try_password(console, operator.email, "not-the-password")
    await expect(page.get_by_role("alert")).to_contain_text("The email or the password is wrong")
    assert time.monotonic() - started >= FAILURE_PAUSE_SECONDS  # slowed down
    await console.shot("wrong-password")
    await expect(page.get_by_label("Email")).to_have_value(operator.email)

    for _ in range(LOCK_AFTER_FAILURES - 1):
        await _try_password(console, operator.email, "still-wrong")
    await expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    # Locked: even the right password is refused until the lock ends.
    await _try_password(console, operator.email, operator.password)
    await expect(page.get_by_role("alert")).to_contain_text("locked until")
    await console.shot("locked-out")
    assert "/sign-in" in page.url

    actions = await _audit_actions(database_url, operator.email)
    assert actions.count("operator.sign_in_failed") == LOCK_AFTER_FAILURES
    assert actions.count("operator.locked_out") == 1

    # Another operator signs in, and out: the session is gone, server-side too.
    other = await make_operator(database_url)
    await console.sign_in(other)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["sp_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r".*/sign-in\?signed_out=1$"))
    await expect(page.get_by_role("status")).to_contain_text("signed out")
    await console.shot("signed-out")
    # The old cookie, replayed, opens nothing.
    await page.context.add_cookies([{**session}])
    await console.visit("/projects", "after-sign-out")
    assert "/sign-in" in page.url
    assert "operator.signed_out" in await _audit_actions(database_url, other.email)


async def test_an_operator_sees_and_acts_only_on_their_own_projects(console_factory,
                                                                    database_url: str) -> None:
    alice, bob = await make_operator(database_url), await make_operator(database_url)
    a: Console = await console_factory()
    await a.sign_in(alice)
    await a.page.get_by_label("Name").fill("Alice's shop")
    await a.page.get_by_role("button", name="Create in test mode").click()
    await a.page.wait_for_url(re.compile(r".*/projects/prj_\w+$"))
    await a.shot("alice-project")
    project_url = a.page.url.removeprefix(a.base_url)

    b: Console = await console_factory(width=375)
    await b.sign_in(bob)
    await expect(b.page.get_by_text("Alice's shop")).to_have_count(0)
    for path in (project_url, project_url + "/keys", project_url + "/incidents", project_url + "/audit-log"):
        assert await b.visit(path, "not-found") == 404
        await expect(b.page.get_by_role("heading", level=1)).to_have_text("Project not found")

    # A forged form: Bob's own valid CSRF token, posted at Alice's project.
    csrf = await b.page.locator("input[name=csrf_token]").first.input_value()
    forged = await b.page.request.post(b.base_url + project_url + "/keys",
                                       form={"csrf_token": csrf, "form_key": "forged-1", "label": "mine now"})
    assert forged.status == 404
    # And without a CSRF token, even on his own page, nothing happens.
    missing = await b.page.request.post(b.base_url + "/projects",
                                        form={"form_key": "k-2", "name": "No token"})
    assert missing.status == 403 and "did not come from your console session" in await missing.text()
    assert await b.visit("/projects", "bob-projects") == 200
    await expect(b.page.get_by_text("No token")).to_have_count(0)

    # Alice's keys page still shows no key: nothing was created for Bob.
    await a.visit(project_url + "/keys", "alice-keys")
    await expect(a.page.get_by_text("No keys yet.")).to_be_visible()
