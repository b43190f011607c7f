"""GraphiQL, served by the gateway with every asset of its own, in headless Chromium with no network beyond the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser import browser_on
from tests.conftest import DatabaseChoice
from tests.served_gateway import ServedGateway, write_config

SUBMIT = """mutation { submitJob(input: { name: "hello", command: ["echo", "hello"], request: { cpus: 1, maxDurationMinutes: 1 } }) {
  job { id } userErrors { code message } } }"""
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    gateway = ServedGateway(write_config(tmp_path, database.url or "", database.schema))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def test_the_page_names_no_outside_address() -> None:
    from graph.http.web import STATIC, page

    html = page("graphiql")
    assert "https://" not in html and "http://" not in html and "//unpkg" not in html
    for asset in (STATIC / "assets").iterdir():
        if asset.suffix == ".css":
            assert "url(http" not in asset.read_text() and "@import" not in asset.read_text(), asset.name


async def test_graphiql_runs_a_query_with_a_token_and_a_subscription(served: ServedGateway) -> None:
    async with browser_on(served.url) as browser:
        page = browser.page
        await page.goto(f"{served.url}/graphql")
        editor = page.locator(QUERY_EDITOR)
        await editor.wait_for(timeout=20_000)

        # the Headers tab carries the token, for HTTP and (as the connection's payload) for subscriptions
        await page.get_by_role("button", name="Headers").wait_for()
        await set_editor(page, HEADERS_EDITOR, f'{{"Authorization": "Bearer {served.token}"}}')
        await set_editor(
            page, QUERY_EDITOR, "query Me {\n  viewer { name }\n  centers { edges { node { name status { state } } } }\n}", "Me"
        )
        await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        result = page.locator(".result-window")
        await result.get_by_text('"state": "UP"').wait_for(timeout=15_000)
        assert '"name": "local"' in await result.inner_text()

        # the docs explorer reads the schema the page fetched
        await page.get_by_role("button", name="Show Documentation Explorer").click()
        await page.locator(".graphiql-doc-explorer").get_by_text("Query", exact=True).first.wait_for(timeout=10_000)
        await browser.screenshot("graphiql")

        submitted = await served.client.execute(SUBMIT)
        job_id = submitted["submitJob"]["job"]["id"]
        await set_editor(
            page, QUERY_EDITOR, f'subscription Watch {{ jobEvents(jobId: "{job_id}", after: 0) {{ seq kind state }} }}', "Watch"
        )
        await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        await result.get_by_text('"jobEvents"').wait_for(timeout=15_000)
        assert any(url.startswith("ws://") for url in browser.requests), browser.requests

    assert browser.outside == [], f"GraphiQL reached beyond the gateway: {browser.outside}"
    assert not [error for error in browser.console_errors if "Content Security Policy" in error], browser.console_errors


async def set_editor(page: Page, selector: str, text: str, operation: str | None = None) -> None:
    """Replace a CodeMirror editor's text, as typing would; with ``operation``, wait until GraphiQL has parsed it
    (it reads the operation's name a moment after an edit, and would otherwise run the previous one)."""
    await page.evaluate("([selector, text]) => document.querySelector(selector).CodeMirror.setValue(text)", [selector, text])
    if operation is not None:
        await page.wait_for_function(
            "([selector, name]) => document.querySelector(selector).CodeMirror.operationName === name", arg=[selector, operation]
        )
