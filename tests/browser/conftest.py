"""Browser tests: Debian's Chromium, headless, driven by Playwright's Python API.

One browser and one axis per module (a server on its own event loop in a
thread, so the tests use Playwright's plain synchronous API), a fresh browser context (no
cookies) per test. Chromium is the system's (``apt-get install chromium``; ``.ci/run``
installs it): Playwright's own browser download is never used. Without it the tests are
skipped with how to get it, except in CI (``CI=true``), where they fail.

Each test saves a screenshot in ``tests/browser/screenshots/`` (not committed).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from axis import signing
from tests.support.console import staff_token
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis

T = TypeVar("T")
CHROMIUM = os.environ.get("AXIS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent / "screenshots"
# quick retries (a failing endpoint is tried again within seconds), sign-ins unlimited
FAST = {
    "AXIS_CONSOLE_SIGNIN_RATE": "100000",
    "AXIS_PUSH_RETRY_BASE": "0.05",
    "AXIS_PUSH_RETRY_CAP": "5",
    "AXIS_PUSH_TIMEOUT": "2",
    "AXIS_AUDIT_CHECKPOINT_INTERVAL": "1",
}


def _chromium() -> str:
    found = shutil.which(CHROMIUM) or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found is None:
        message = (
            f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` (or point"
            " AXIS_TEST_CHROMIUM at one)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for the module. Not for the session: while Playwright's synchronous API
    is running it holds an event loop in the main thread, and the suite's asyncio tests
    that come after could not start theirs."""
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=ARGS, headless=True)
        yield launched
        launched.close()


class LiveAxis:
    """An axis serving on its own loop in a thread, and a receiver for pushes beside it."""

    def __init__(self, settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._context = start_axis(settings)
        self.axis: AxisHarness = self.call(self._context.__aenter__())
        self.receiver_up = False
        self.received: list[str] = []
        self._runner: web.AppRunner | None = None
        self.receiver_url = self.call(self._start_receiver())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return self.axis.url

    async def _start_receiver(self) -> str:
        """``/down`` always answers 503 (its deliveries are retried: a failing endpoint);
        ``/gone`` answers 410 (given up at once: dead) until ``receiver_up``, then 200."""

        async def down(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=503, text="receiver down for the test")

        async def gone(request: web.Request) -> web.Response:
            await request.read()
            if not self.receiver_up:
                return web.Response(status=410, text="gone for the test")
            self.received.append(request.headers.get("X-Axis-Message-Id", ""))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/down", down)
        app.router.add_post("/gone", gone)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            await self._context.__aexit__(None, None, None)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def token(self, role: str) -> str:
        return self.call(staff_token(self.axis, role))[1]  # type: ignore[arg-type]


def live_axis(tmp_path: Path, env: dict[str, str]) -> LiveAxis:
    key = signing.generate_axis_key("axis-browser-test")
    return LiveAxis(keyed_settings(tmp_path / "var", key, {**FAST, **env}))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAxis]:
    server = live_axis(tmp_path_factory.mktemp("browser"), {})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context (no cookies, Vietnamese, a laptop screen); a screenshot at the end."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    context.set_default_timeout(15000)
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the confirm() conveniences
    try:
        yield opened
    finally:
        SHOTS.mkdir(exist_ok=True)
        name = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())
        try:
            opened.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        finally:
            context.close()


def sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/console/")
    page.get_by_label("Mã truy cập").fill(token)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(re.compile(r".*/console/$"))
