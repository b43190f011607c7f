"""Debian's headless Chromium, driven by Playwright (no browser download), against a served gateway.

Every request the page makes is recorded; one to anywhere but the gateway is aborted and fails the test
(``Browser.outside``), so a page that needs the internet cannot pass here."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocket, async_playwright

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass
class Browser:
    context: BrowserContext
    page: Page
    gateway_url: str
    outside: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def ours(self, url: str) -> bool:
        origin = self.gateway_url.split("://", 1)[1]
        return url.startswith((f"http://{origin}/", f"ws://{origin}/")) or url.startswith(("data:", "blob:", "about:"))

    async def screenshot(self, name: str) -> Path:
        """A picture of the page: the README's docs/NAME.png with AICN_SCREENSHOTS=1, else a temporary file."""
        folder = DOCS if os.environ.get("AICN_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "aicn-screenshots"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.png"
        await self.page.screenshot(path=str(path))
        return path


def require_chromium() -> None:
    """Skip on a laptop without Debian's chromium; under CI a missing browser fails the run."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message + " (CI=true: required)")
        pytest.skip(message)


@asynccontextmanager
async def browser_on(gateway_url: str, width: int = 1280, height: int = 860) -> AsyncIterator[Browser]:
    """A fresh profile each time, so nothing is cached between tests."""
    require_chromium()
    profile = tempfile.mkdtemp(prefix="aicn-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
                service_workers="block",
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                browser = Browser(context, page, gateway_url)

                async def guard(route: Route) -> None:
                    url = route.request.url
                    browser.requests.append(url)
                    if browser.ours(url):
                        await route.continue_()
                    else:
                        browser.outside.append(url)
                        await route.abort()

                def socket_opened(socket: WebSocket) -> None:
                    browser.requests.append(socket.url)
                    if not browser.ours(socket.url):
                        browser.outside.append(socket.url)

                await context.route("**/*", guard)
                page.on("websocket", socket_opened)
                page.on("console", lambda message: browser.console_errors.append(message.text) if message.type == "error" else None)
                page.on("pageerror", lambda error: browser.console_errors.append(str(error)))
                yield browser
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
