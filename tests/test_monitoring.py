"""Monitoring: `/metrics` read with Prometheus' own text parser while jobs run, who may read it,
request ids in and out, and JSON log lines from a real `aicn serve`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aicn.watch_settings import MetricsSettings
from tests.conftest import DatabaseChoice, Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.processes import folder_jobs_can_read
from tests.served_gateway import ServedGateway, write_config
from tests.waiting import eventually
from tests.webhook_helpers import LOOPBACK_WEBHOOKS, WebhookReceiver, create_endpoint

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str, **headers: str) -> Samples:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        answer = await http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[WebhookReceiver]:
    process = WebhookReceiver(tmp_path / "receiver")
    await process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_the_counters_move_as_jobs_run(gateway_factory: Callable[..., Any], receiver: WebhookReceiver) -> None:
    gateway: Gateway = await gateway_factory(webhooks=LOOPBACK_WEBHOOKS)
    endpoint = await create_endpoint(gateway.client, receiver.url("/ok"), ["JOB_ENDED"])
    receiver.trust("/ok", endpoint["secret"])
    before = await scrape(gateway.url)

    await gateway.client.execute("query Dashboard { centers { edges { node { name } } } }")
    with folder_jobs_can_read() as folder:  # LOCAL jobs run as a user of their own
        go = folder / "go"
        job = await submit(gateway.client, python_job(f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)"))
        await wait_for_state(gateway.client, job["id"], {"RUNNING"})
        watch = asyncio.create_task(collect(gateway, job["id"]))
        running = await eventually(
            lambda: scrape_if(gateway.url, lambda s: value(s, "aicn_subscriptions_open") >= 1), "the subscription is counted as open"
        )
        assert value(running, "aicn_jobs", state="RUNNING") == 1
        go.touch()
        await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
        events = await asyncio.wait_for(watch, 20)
    await eventually(receiver.received, "the webhook arrived")

    after = await eventually(
        lambda: scrape_if(gateway.url, lambda s: value(s, "aicn_webhook_deliveries_total", kind="JOB_ENDED", state="DELIVERED") >= 1),
        "the webhook delivery is counted",
    )

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("aicn_graphql_operations_total", operation="Submit", type="mutation", outcome="ok") == 1
    assert moved("aicn_graphql_operation_seconds_count", operation="Dashboard", type="query") == 1
    assert moved("aicn_connector_calls_total", center="local") >= 2  # the submission, then status polls
    assert moved("aicn_connector_call_seconds_count", center="local") == moved("aicn_connector_calls_total", center="local")
    assert moved("aicn_subscription_events_total") >= len(events) >= 1
    assert value(after, "aicn_subscriptions_open") == 0
    assert moved("aicn_webhook_attempts_total", kind="JOB_ENDED", outcome="delivered") == 1
    assert value(after, "aicn_jobs", state="SUCCEEDED") == 1 and value(after, "aicn_jobs", state="RUNNING") == 0
    assert value(after, "aicn_network_queue_length") == 0 and value(after, "aicn_webhook_outbox_pending") == 0
    assert value(after, "aicn_center_breaker_state", center="local", state="UP") == 1
    assert value(after, "aicn_center_breaker_state", center="local", state="DOWN") == 0


async def scrape_if(url: str, condition: Callable[[Samples], bool]) -> Samples | None:
    samples = await scrape(url)
    return samples if condition(samples) else None


async def collect(gateway: Gateway, job_id: str) -> list[dict[str, Any]]:
    query = "subscription($id: ID!) { jobEvents(jobId: $id, after: 0) { seq kind } }"
    return [event async for event in gateway.client.subscribe(query, {"id": job_id})]


async def test_metrics_answer_loopback_without_a_token_and_anyone_else_with_it(gateway_factory: Callable[..., Any]) -> None:
    open_gateway: Gateway = await gateway_factory()
    from graph.http.app import create_app

    remote = httpx.ASGITransport(app=create_app(open_gateway.runtime), client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://gateway") as http:
        refused = await http.get("/metrics")
    assert refused.status_code == 403 and refused.json()["error"] == "FORBIDDEN"
    assert value(await scrape(open_gateway.url), "aicn_network_queue_length") == 0

    token = "scrape-" + "x" * 20
    guarded: Gateway = await gateway_factory(metrics=MetricsSettings(token=token))
    async with httpx.AsyncClient(base_url=guarded.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"authorization": "Bearer wrong-token-of-some-length"})).status_code == 401
    assert await scrape(guarded.url, authorization=f"Bearer {token}")


async def test_a_request_id_is_taken_from_the_caller_or_made_and_always_returned(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        kept = await http.get("/healthz", headers={"x-request-id": "lb-7f3a.1"})
        made = await http.get("/healthz", headers={"x-request-id": "not an id; it has spaces"})
    assert kept.headers["x-request-id"] == "lb-7f3a.1"
    assert len(made.headers["x-request-id"]) == 16 and made.headers.get_list("x-request-id") == [made.headers["x-request-id"]]
    answer = await gateway.client.post("{ viewer { name } }", headers={"x-request-id": "client-42"})
    assert answer.headers.get_list("x-request-id") == ["client-42"]


async def test_json_logs_carry_the_request_id(database: DatabaseChoice, tmp_path: Path) -> None:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    config.write_text(config.read_text().replace('log_level = "warning"', 'log_level = "info"\nlog_format = "json"'))
    served = ServedGateway(config)
    try:
        await served.start()
        answer = await served.client.post("query Named { viewer { name } }", headers={"x-request-id": "json-log-check"})
        assert answer.status_code == 200

        def lines() -> list[dict[str, Any]]:
            text = served.log.read_text()
            documents = [json.loads(line) for line in text.splitlines() if not line.startswith("aicn: ")]  # stdout's banner
            return documents if any(document["request_id"] == "json-log-check" for document in documents) else []

        documents = await eventually(lines, "the request's access line is logged")
    finally:
        served.kill()
        await served.client.close()
    assert all({"time", "level", "logger", "message", "request_id"} <= set(document) for document in documents)
    [access] = [document for document in documents if document["request_id"] == "json-log-check"]
    assert access["logger"] == "uvicorn.access" and "POST /graphql" in access["message"]
    assert any(document["logger"] == "aicn" and "aicn started" in document["message"] for document in documents)
