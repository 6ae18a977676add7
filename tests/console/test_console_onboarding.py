"""The product page's seven onboarding steps, done in the browser by a new operator against the
whole stack (gateway, agents, every sink on real Kafka and PostgreSQL, the local mail catcher, the
shipped example repair receiver and a local Slack-like catcher over http), each checklist tick
asserted as it happens, the incident watched arriving and resolving without a reload."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect

from harness.processes import free_port
from harness.stack import SINK_NAMES, Stack
from tests.console.conftest import Console, make_operator
from tests.support.api import Api, eventually
from tests.support.example_receiver import running_example_receiver
from tests.support.mail_catcher import MailCatcher

T = TypeVar("T")

pytestmark = pytest.mark.e2e
# The checklist and the incident pages refresh every 2 s; the pipeline takes a second or two.
LIVE = 30_000


@pytest.fixture
def stack(stack_factory, mail_catcher: MailCatcher) -> Stack:
    return stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_SMTP_URL=mail_catcher.url)


@pytest.fixture
async def slack_catcher() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-like incoming webhook on plain http, as a test-mode project may use."""
    posts: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", posts
    await runner.cleanup()


def _step(page: Page, number: int) -> Locator:
    return page.locator(f'[data-step="{number}"]')


async def _ticked(console: Console, done: set[int]) -> None:
    for number in range(1, 8):
        await expect(_step(console.page, number)).to_have_attribute(
            "data-done", "yes" if number in done else "no", timeout=LIVE)


async def test_a_new_operator_onboards_a_project_in_the_browser(
        console_factory, database_url: str, stack: Stack, http, mail_catcher: MailCatcher,
        slack_catcher: tuple[str, list[dict[str, Any]]]) -> None:
    operator = await make_operator(database_url)
    console: Console = await console_factory()
    page = console.page
    await console.sign_in(operator)

    # 1. Create the project: it starts in test mode, and the checklist has its first tick.
    await page.get_by_label("Name").fill("Checkout")
    await page.get_by_role("button", name="Create in test mode").click()
    await page.wait_for_url(re.compile(r".*/projects/prj_\w+$"))
    project_path = page.url.removeprefix(console.base_url)
    await console.shot("project-created")
    await expect(page.locator(".badge").first).to_have_text("test")
    await _ticked(console, {1})

    # 2. The repair callback, at the example receiver's address; its secret is shown once.
    port = free_port()
    await console.visit(project_path + "/callback", "callback")
    await page.get_by_label("Callback URL").fill(f"http://127.0.0.1:{port}/repair")
    await page.get_by_role("button", name="Save URL").click()
    secret = await page.locator("#new-secret").text_content()
    assert secret and secret.startswith("whsec_")
    await console.shot("callback-secret")
    # Nothing listens there yet: the test callback says so, beside the button.
    await page.get_by_role("button", name="Send test callback").click()
    await expect(page.locator("#test-result")).to_contain_text("No answer")
    await expect(page.locator("#test-result")).to_contain_text("ClientConnectorError")
    await console.shot("callback-test-no-answer")

    # 3. A key, shown once: not after a reload.
    await console.visit(project_path + "/keys", "keys")
    await page.get_by_label("Label").fill("Production key")
    await page.get_by_role("button", name="Create key").click()
    key = await page.locator("#new-key").text_content()
    assert key and key.startswith("sk_")
    await expect(page.get_by_text("you will not see this again")).to_be_visible()
    await console.shot("key-shown-once")
    await page.reload()
    await expect(page.locator("#new-key")).to_have_count(0)
    await expect(page.get_by_text(key)).to_have_count(0)
    await expect(page.locator("[data-key]")).to_contain_text("Production key")
    await console.shot("key-after-reload")

    # 4. Alert destinations: email (to the mail catcher) and Slack on a local http catcher.
    slack_url, slack_posts = slack_catcher
    await console.visit(project_path + "/alerts", "alerts")
    for kind, target in (("email", "oncall@example.com"), ("slack", slack_url)):
        await page.get_by_label("Type").select_option(kind)
        await page.get_by_label("Email address or Slack webhook URL").fill(target)
        await page.get_by_role("button", name="Add destination").click()
        await expect(page.locator("[data-destination]").filter(has_text=target)).to_have_count(1)
    await console.shot("destinations")

    await console.visit(project_path, "checklist-four-done")
    await _ticked(console, {1, 2, 3, 4})
    # The next step's curl lines, filled in with this host and a placeholder for the key.
    await expect(_step(page, 5).locator("pre").first).to_contain_text(f"{console.base_url}/api/v1/receipt")

    # 5. A test receipt and result through the API: the step ticks without a reload.
    app = Api(http, stack.base_url, key)
    assert (await app.receipt("test_1"))[0] == 202
    assert (await app.result("test_1", "succeeded"))[0] == 202
    await _ticked(console, {1, 2, 3, 4, 5})
    await console.shot("checklist-five-done")

    # 6. A forced failure: the incident appears on the open list without a reload...
    await console.visit(project_path + "/incidents", "incidents-empty")
    assert (await app.receipt("test_2"))[0] == 202
    assert (await app.result("test_2", "failed", detail="forced failure"))[0] == 202
    row = page.locator("[data-incident]")
    await expect(row).to_have_count(1, timeout=LIVE)
    await expect(row).to_contain_text("test_2")
    await console.shot("incident-appeared")
    # ... and the alerts go out: the email to the catcher, the Slack post to its http hook.
    mails = await eventually(_async(lambda: mail_catcher.messages), lambda found: len(found) >= 1, timeout=30)
    assert "test_2" in mails[0]["Subject"]
    await eventually(_async(lambda: slack_posts), lambda found: len(found) >= 1, timeout=30)
    await console.visit(project_path, "checklist-six-done")
    await _ticked(console, {1, 2, 3, 4, 5, 6})

    # Reprocess, with a double click: one replay, one signed callback; the example receiver posts
    # the result with the replay_id and the incident resolves on the page by itself.
    rerun: list[dict[str, Any]] = []

    async def grant_access(callback: dict[str, Any]) -> None:
        rerun.append(callback)

    async with running_example_receiver(secrets=[secret], sendpromptly_url=stack.base_url, api_key=key,
                                        effect=grant_access, port=port):
        # The receiver verifies the test callback's signature and answers 200, rerunning nothing.
        await console.visit(project_path + "/callback", "callback-before-test")
        await page.get_by_role("button", name="Send test callback").click()
        await expect(page.locator("#test-result")).to_contain_text("HTTP 200")
        await expect(page.locator("#test-result")).to_contain_text(re.compile(r"in \d+ ms"))
        await console.shot("callback-test-answered")
        assert rerun == []
        await console.visit(project_path + "/incidents", "incidents")
        await row.get_by_role("link").click()
        await page.wait_for_url(re.compile(r".*/incidents/inc_\w+$"))
        await console.shot("incident")
        await page.locator("#reprocess").dblclick()
        await expect(page.locator("#incident-status")).to_contain_text("resolved", timeout=LIVE)
        await expect(page.locator("#incident-status")).to_contain_text("outcome succeeded")
        # Resolved: the actions go from the page without a reload.
        for action in ("#reprocess", "#acknowledge", "#resolve"):
            await expect(page.locator(action)).to_have_count(0)
        await expect(page.locator("[data-replay]")).to_have_count(1)
        await expect(page.locator("[data-replay] tr.attempt")).to_have_count(1, timeout=LIVE)
        await console.shot("incident-resolved")
    assert len(rerun) == 1 and rerun[0]["reference"] == "test_2"

    # 7. Switch to live: refused with what is missing (an https callback; the http Slack webhook),
    # then fixed as the page says, and switched.
    await console.visit(project_path, "before-live")
    await page.get_by_label(re.compile("I confirm")).check()
    await page.get_by_role("button", name="Switch to live").click()
    await expect(page.get_by_role("alert")).to_contain_text("https")
    await expect(page.locator('[data-need="callback"]')).to_have_class("missing")
    await expect(page.locator('[data-need="alerts"]')).to_have_class("missing")
    await expect(page.locator('[data-need="keys"]')).to_have_class("done")
    await console.shot("live-refused")

    await console.visit(project_path + "/callback", "callback-https")
    await page.get_by_label("Callback URL").fill("https://127.0.0.1:9443/sendpromptly/repair")
    await page.get_by_role("button", name="Save URL").click()
    await expect(page.locator("#new-secret")).to_be_visible()
    await console.visit(project_path + "/alerts", "alerts-before-removal")
    slack_row = page.locator("[data-destination]").filter(has_text=slack_url)
    await slack_row.get_by_text("Remove…").click()
    await slack_row.get_by_role("button", name=re.compile("^Remove ")).click()
    await expect(page.locator("[data-destination]")).to_have_count(1)

    await console.visit(project_path, "ready-for-live")
    for need in ("callback", "keys", "alerts"):
        await expect(page.locator(f'[data-need="{need}"]')).to_have_class("done")
    await page.get_by_label(re.compile("I confirm")).check()
    await page.get_by_role("button", name="Switch to live").click()
    await expect(page.locator("h1 .badge")).to_have_text("live")
    await expect(page.locator("#checklist")).to_have_count(0)
    await console.shot("live")

    # Every action above is in the project's audit log, by this operator, as the API records it.
    # The log follows the audit topic, a moment behind the switch just made; its page does not
    # refresh itself, so it is loaded again until the switch is there.
    switched = page.locator("td", has_text=re.compile(r"^project\.mode_switched$"))
    for _ in range(LIVE // 500):
        await console.visit(project_path + "/audit-log?verify=1", "audit-log")
        if await switched.count():
            break
        await page.wait_for_timeout(500)
    for action in ("project.created", "callback.set", "callback.tested", "api_key.created",
                   "destination.added", "incident.reprocess_requested", "destination.removed",
                   "project.mode_switched"):
        await expect(page.locator("td", has_text=re.compile(f"^{re.escape(action)}$")).first).to_be_visible(
            timeout=LIVE)
    await expect(page.locator("#chain-status")).to_contain_text("Chain verified")


def _async(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def probe() -> T:
        return read()
    return probe
