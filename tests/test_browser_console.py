"""The console at /console in headless Chromium, against a served gateway, with no network beyond it:
sign in, submit a job (offers first), watch its progress bar reach 100 % and its logs arrive live, cancel
another, filter the board, see the centers and the usage chart; a dropped WebSocket resumes with `after`;
a revoked token sends the user back to sign-in with the reason."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from tests.browser import Browser, browser_on
from tests.conftest import DatabaseChoice
from tests.served_gateway import ServedGateway, served_gateway

#: a job that reports progress and writes a log line every step, slowly enough to watch
STEPS = 6
WORKER = (
    "python3 -c 'import json, time\n"
    f"for i in range(1, {STEPS + 1}):\n"
    '    print("epoch %d done" % i, flush=True)\n'
    f'    print("AICN_PROGRESS " + json.dumps({{"fraction": i / {STEPS}, "step": i, "totalSteps": {STEPS}, "metrics": {{"loss": 1 / i}}}}), flush=True)\n'
    "    time.sleep(1)'"
)


#: a second, dearer center: the offers and the placement have a choice to show
SECOND_CENTER = """
[[centers]]
name = "local-b"
kind = "LOCAL"
display_name = "Local B"
region = "test-b"
poll_interval_seconds = 0.05
[[centers.devices]]
accelerator = "cpu-core"
count = 4
price_per_unit_hour = "48000.00"
"""


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    async with served_gateway(tmp_path, database.url or "", database.schema, SECOND_CENTER) as gateway:
        yield gateway


async def sign_in(browser: Browser, token: str) -> Page:
    page = browser.page
    await page.goto(f"{browser.gateway_url}/console")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    return page


async def submit_from_the_form(page: Page, name: str, command: str, minutes: str = "5") -> str:
    await page.get_by_role("link", name="Submit", exact=True).click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Command").fill(command)
    await page.get_by_label("Time limit (minutes)").fill(minutes)
    submit = page.get_by_role("button", name=re.compile("^Submit job"))
    await expect(submit).to_be_disabled()  # offers come first
    await page.get_by_role("button", name="Show offers").click()
    await expect(page.locator("table.offers tbody tr")).to_have_count(2)
    await expect(submit).to_be_enabled()
    return await submit_and_open(page, submit)


async def submit_and_open(page: Page, submit: object) -> str:
    await submit.click()  # type: ignore[attr-defined]
    await page.wait_for_url(re.compile(r"#/jobs/.+"))
    return page.url.rsplit("#/jobs/", 1)[1]


async def test_sign_in_submit_watch_cancel_and_usage(served: ServedGateway) -> None:
    async with browser_on(served.url) as browser:
        page = browser.page
        await page.goto(f"{served.url}/console")
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await browser.screenshot("console-sign-in")
        await sign_in(browser, served.token)
        assert await page.evaluate("() => sessionStorage.getItem('aicn.token')") == served.token
        assert await page.evaluate("() => localStorage.length") == 0

        # submit: the offers are shown first
        await page.get_by_role("link", name="Submit", exact=True).click()
        await page.get_by_label("Name").fill("train")
        await page.get_by_label("Command").fill(WORKER)
        await page.get_by_role("button", name="Show offers").click()
        await expect(page.locator("table.offers tbody tr")).to_have_count(2)
        await expect(page.locator("table.offers tbody tr").first).to_contain_text("Local")
        await browser.screenshot("console-submit")
        await submit_and_open(page, page.get_by_role("button", name=re.compile("^Submit job")))

        # the job page: logs arrive while the job runs, and the bar reaches 100 %
        logs = page.get_by_label("job logs")
        await expect(logs).to_contain_text("epoch 1 done", timeout=20_000)
        assert "SUCCEEDED" not in await page.locator("h2 .badge").inner_text()  # live: before the job's end
        bar = page.get_by_role("progressbar", name="job progress")
        await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
        await expect(page.locator("h2 .badge")).to_have_text("SUCCEEDED", timeout=20_000)
        await expect(logs).to_contain_text(f"epoch {STEPS} done")
        await expect(page.locator("table.candidates tr.chosen")).to_contain_text("Local")
        await expect(page.locator("table.candidates tbody tr")).to_have_count(2)
        await expect(page.locator("table.metrics")).to_contain_text("loss")
        await browser.screenshot("console-job")
        seqs = [int(seq) for seq in await page.locator("ol.events li").evaluate_all("items => items.map(item => item.dataset.seq)")]
        assert seqs == sorted(set(seqs)), seqs

        # cancel another
        await submit_from_the_form(page, "long", "sleep 120")
        await expect(page.locator("h2 .badge")).to_have_text(re.compile("RUNNING|STARTING|QUEUED"), timeout=20_000)
        await page.get_by_role("button", name="Cancel job").click()
        await expect(page.locator("h2 .badge")).to_have_text("CANCELLED", timeout=30_000)

        # the board, live and filtered
        await page.get_by_role("link", name="Jobs", exact=True).click()
        await expect(page.locator("table.jobs tbody tr")).to_have_count(2)
        await browser.screenshot("console-jobs")
        await page.get_by_label("filter by state").select_option("SUCCEEDED")
        await expect(page.locator("table.jobs tbody tr")).to_have_count(1)
        await expect(page.locator("table.jobs tbody")).to_contain_text("train")

        await page.get_by_role("link", name="Centers").click()
        await expect(page.locator(".card.center")).to_have_count(2)
        await expect(page.locator(".card.center").first).to_contain_text("standard units free")
        await browser.screenshot("console-centers")

        await page.get_by_role("link", name="Usage & bills").click()
        await expect(page.locator("canvas[data-rendered=true]")).to_have_count(1, timeout=15_000)
        await expect(page.locator("table.bills tbody tr")).to_have_count(1)
        await expect(page.locator(".card h3").first).to_contain_text("unit-hours")
        async with page.expect_download() as downloading:
            await page.get_by_role("button", name="Download CSV").click()
        csv = Path(await (await downloading.value).path()).read_text()
        assert csv.startswith("BilledCost") or "BilledCost" in csv.splitlines()[0], csv[:200]
        await browser.screenshot("console-usage")

    assert browser.outside == [], f"the console reached beyond the gateway: {browser.outside}"


async def test_a_dropped_socket_resumes_after_the_last_event(served: ServedGateway) -> None:
    sockets: list[WebSocketRoute] = []
    async with browser_on(served.url) as browser:

        def proxy(socket: WebSocketRoute) -> None:
            socket.connect_to_server()
            sockets.append(socket)

        await browser.context.route_web_socket(re.compile(r".*/graphql$"), proxy)
        page = await sign_in(browser, served.token)
        await submit_from_the_form(page, "resumed", WORKER)
        await expect(page.get_by_label("job logs")).to_contain_text("epoch 2 done", timeout=20_000)
        before = len(sockets)
        await sockets[-1].close(code=1012, reason="dropped by the test")  # as a restarting server would
        await expect(page.get_by_role("progressbar", name="job progress")).to_have_attribute("aria-valuenow", "100", timeout=30_000)
        await expect(page.locator("h2 .badge")).to_have_text("SUCCEEDED", timeout=20_000)
        assert len(sockets) > before, "the console did not reconnect"
        seqs = [int(seq) for seq in await page.locator("ol.events li").evaluate_all("items => items.map(item => item.dataset.seq)")]
        assert seqs == list(range(1, len(seqs) + 1)), f"an event was missed or shown twice: {seqs}"
        progress = await page.locator("ol.events li").filter(has_text="PROGRESS").count()
        assert progress == STEPS, progress
        log = (await page.get_by_label("job logs").inner_text()).splitlines()
        epochs = [line for line in log if line.startswith("epoch")]
        assert epochs == [f"epoch {i} done" for i in range(1, STEPS + 1)], epochs


async def test_a_revoked_token_sends_the_user_back_to_sign_in_with_the_reason(served: ServedGateway) -> None:
    created = await served.client.execute(
        'mutation { createAccount(input: { name: "ana" }) { account { id } } }',
    )
    account = created["createAccount"]["account"]["id"]
    token = await served.client.execute(
        'mutation($a: ID!) { createApiToken(input: { accountId: $a, name: "console", scopes: [READ, SUBMIT] }) { secret token { id } } }',
        {"a": account},
    )
    secret, token_id = token["createApiToken"]["secret"], token["createApiToken"]["token"]["id"]
    async with browser_on(served.url) as browser:
        page = await sign_in(browser, secret)
        await expect(page.locator("span.live.on")).to_be_visible()
        await served.client.execute("mutation($t: ID!) { revokeApiToken(input: { tokenId: $t }) { userErrors { code } } }", {"t": token_id})
        await expect(page.get_by_role("alert")).to_contain_text("revoked", timeout=15_000)
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert await page.evaluate("() => sessionStorage.getItem('aicn.token')") is None
        await page.get_by_label("Token").fill(secret)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("not valid")
