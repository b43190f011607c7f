"""The console's Inference services page in headless Chromium, against a served gateway: a service
deployed with a custom serving command turns READY on the page live (serviceEvents), answers an
invocation typed into the page (and a coded error for one it refuses), scales, and stops to STOPPED,
its events resumed without a gap or a repeat after the WebSocket drops."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import WebSocketRoute, expect

from tests.browser import browser_on
from tests.conftest import DatabaseChoice
from tests.processes import JOB_PYTHON, folder_jobs_can_read
from tests.served_gateway import ServedGateway, served_gateway
from tests.service_helpers import SERVER_SCRIPT, deploy, register_model
from tests.test_browser_console import sign_in

#: the services controller looks often
SERVING = """
[services]
tick_seconds = 0.1
health_interval_seconds = 0.3
max_payload_bytes = 10000
"""


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    async with served_gateway(tmp_path, database.url or "", database.schema, SERVING) as gateway:
        yield gateway


@pytest.fixture
def scripts() -> Iterator[Path]:
    """A folder the replicas' users may read (pytest's tmp_path is private)."""
    with folder_jobs_can_read() as folder:
        yield folder


async def test_a_service_turns_ready_answers_scales_and_stops(served: ServedGateway, tmp_path: Path, scripts: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    server = scripts / "server.py"
    server.write_text(SERVER_SCRIPT)
    model = await register_model(served.client, name="echo-model", uri=weights.as_uri())
    async with browser_on(served.url) as browser:
        sockets: list[WebSocketRoute] = []
        asked_after: list[int] = []  # the `after` of every serviceEvents subscription the page sent

        def proxy(socket: WebSocketRoute) -> None:
            server = socket.connect_to_server()

            def to_server(message: str | bytes) -> None:
                sent = json.loads(message)
                if sent.get("type") == "subscribe" and "serviceEvents" in sent["payload"]["query"]:
                    asked_after.append(int(sent["payload"]["variables"]["after"]))
                server.send(message)

            socket.on_message(to_server)
            sockets.append(socket)

        await browser.context.route_web_socket(re.compile(r".*/graphql$"), proxy)
        page = await sign_in(browser, served.token)
        service = await deploy(served.client, modelId=model, name="echo", command=[JOB_PYTHON, str(server), "ok", "{port}"])
        await page.get_by_role("link", name="Inference services").click()
        card = page.get_by_role("article", name="service echo")
        badge = card.locator("h3 .badge")
        await expect(badge).to_have_text("READY", timeout=20_000)  # from serviceEvents, without a reload
        await expect(card.locator("dd.replicas")).to_have_text("1 ready / 1 desired")
        await expect(card).to_contain_text("echo-model")
        await expect(card.locator("ol.events")).to_contain_text("STATE READY")

        await card.get_by_label("Input (JSON)").fill('{"x": 41}')
        await card.get_by_role("button", name="Invoke").click()
        await expect(card.get_by_label("answer")).to_contain_text('"x": 41')
        await expect(card.locator("dd.requests")).to_have_text("1", timeout=10_000)  # counted on the controller's tick

        await card.get_by_label("Max replicas").fill("3")
        await card.get_by_label("Target requests per replica").fill("5")
        await card.get_by_role("button", name="Scale").click()
        await expect(card).to_contain_text("min 1 · max 3 · target 5 requests per replica")
        await browser.screenshot("console-services")
        await card.get_by_label("Input (JSON)").fill('{"blob": "' + "x" * 20_000 + '"}')
        await card.get_by_role("button", name="Invoke").click()
        await expect(card.locator("form.invoke").get_by_role("alert")).to_contain_text("PAYLOAD_TOO_LARGE")
        await expect(card.get_by_label("answer")).to_have_count(0)
        await card.get_by_label("Min replicas").fill("4")
        await card.get_by_role("button", name="Scale").click()
        await expect(card.locator("form.scale").get_by_role("alert")).to_contain_text("INVALID_SCALE")

        # a dropped socket: the card resumes serviceEvents after the last seq it showed
        before = len(sockets)
        shown = int(await card.locator("ol.events li").last.get_attribute("data-seq") or 0)
        await sockets[-1].close(code=1012, reason="dropped by the test")
        await card.get_by_role("button", name="Stop service").click()
        await expect(badge).to_have_text("STOPPED", timeout=20_000)
        await expect(card.get_by_role("button", name="Stop service")).to_have_count(0)
        seqs = [int(seq) for seq in await card.locator("ol.events li").evaluate_all("items => items.map(item => item.dataset.seq)")]
        assert seqs == list(range(1, len(seqs) + 1)), f"an event was missed or shown twice: {seqs}"
        assert len(sockets) > before, "the console did not reconnect"
        assert asked_after[0] == 0 and asked_after[-1] >= shown > 0, (asked_after, shown)
        await expect(card.locator("ol.events")).to_contain_text("STATE STOPPED")
        states = await served.client.execute(
            "query($id: ID!) { node(id: $id) { ... on InferenceService { state } } }", {"id": service["id"]}
        )
        assert states["node"]["state"] == "STOPPED"
    assert browser.outside == [], f"the console reached beyond the gateway: {browser.outside}"
