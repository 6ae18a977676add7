"""The console's browser tests: Debian's Chromium driven by Playwright (never a downloaded
browser), a screenshot of every page visited, and no error in the browser's console allowed."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from api_gateway import control_plane
from harness.stack import Stack
from store.db import open_pool

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
# Chromium reports a page answered 4xx as a console error; a test that expects one (a 404 page)
# is not failed for it. Any other error (a script's, a missing asset's) fails the test.
_ERROR_PAGE = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/test-tools.sh, "
                    "apt-get install chromium); nothing downloads a browser")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    args=["--no-sandbox", "--disable-gpu"])
        yield launched
        await launched.close()


@dataclass
class Operator:
    email: str
    password: str


async def make_operator(database_url: str, *, admin: bool = False) -> Operator:
    """An operator with a console password, made as ``sendpromptly operator create`` makes one."""
    email = f"op-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            await control_plane.invite_operator(conn, control_plane.Actor("cli:test"), email=email,
                                                is_admin=admin, project_ids=[], password=password)
    finally:
        await pool.close()
    return Operator(email, password)


@dataclass
class Console:
    """One browser context on the console: pages visited are screenshotted in order."""

    page: Page
    base_url: str
    shots: Path
    errors: list[str] = field(default_factory=list)
    taken: int = 0

    async def shot(self, name: str) -> None:
        self.taken += 1
        self.shots.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=self.shots / f"{self.taken:02d}-{name}.png", full_page=True)

    async def visit(self, path: str, name: str) -> int:
        response = await self.page.goto(self.base_url + path)
        assert response is not None
        await self.shot(name)
        return response.status

    async def sign_in(self, operator: Operator) -> None:
        await self.visit("/sign-in", "sign-in")
        await self.page.get_by_label("Email").fill(operator.email)
        await self.page.get_by_label("Password").fill(operator.password)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(re.compile(r".*/projects$"))
        await self.shot("projects")


@pytest.fixture
async def console_factory(browser: Browser, stack: Stack,
                          request: pytest.FixtureRequest) -> AsyncIterator:
    opened: list[Console] = []

    async def open_console(width: int = 1280) -> Console:
        context = await browser.new_context(viewport={"width": width, "height": 900})
        page = await context.new_page()
        console = Console(page, stack.base_url, ARTIFACTS / request.node.name / f"browser-{len(opened) + 1}")

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not _ERROR_PAGE.search(message.text):
                console.errors.append(f"{message.location.get('url')}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
        opened.append(console)
        return console

    yield open_console
    for console in opened:
        await console.page.context.close()
    assert [e for console in opened for e in console.errors] == [], "errors in the browser's console"
