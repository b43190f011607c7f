"""Webhooks through the graph, to a real receiver process on loopback: signed, retried with the
same delivery id, recorded attempt by attempt; destinations inside the network refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aicn.watch_settings import WebhookSettings
from resolvers.webhooks.destinations import DestinationPolicy
from resolvers.webhooks.events import EventKind
from tests.conftest import Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.waiting import eventually
from tests.webhook_helpers import LOOPBACK_WEBHOOKS, WebhookReceiver, create_endpoint, deliveries

ENDPOINTS = "{ webhookEndpoints(first: 20) { totalCount edges { node { id url } } } }"


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[WebhookReceiver]:
    process = WebhookReceiver(tmp_path / "receiver")
    await process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def hooked(gateway_factory: Callable[..., Any]) -> Gateway:
    gateway: Gateway = await gateway_factory(webhooks=LOOPBACK_WEBHOOKS)
    return gateway


async def registered(gateway: Gateway, receiver: WebhookReceiver, path: str, kinds: list[str]) -> dict[str, Any]:
    payload = await create_endpoint(gateway.client, receiver.url(path), kinds)
    assert payload["userErrors"] == [], payload
    receiver.trust(path, payload["secret"])
    return dict(payload["endpoint"])


async def test_a_job_end_reaches_the_receiver_signed_once_and_is_recorded(hooked: Gateway, receiver: WebhookReceiver) -> None:
    payload = await create_endpoint(hooked.client, receiver.url("/ok"), ["JOB_ENDED"], description="ci")
    assert payload["userErrors"] == [] and payload["secret"].startswith("whsec_")
    assert payload["endpoint"]["eventKinds"] == ["JOB_ENDED"] and payload["endpoint"]["description"] == "ci"
    receiver.trust("/ok", payload["secret"])
    job = await submit(hooked.client, python_job("print('hi')"))
    await wait_for_state(hooked.client, job["id"], {"SUCCEEDED"})

    [arrival] = await eventually(receiver.received, "the receiver got the job's end", timeout=15)
    assert arrival["valid"] and arrival["type"] == "JOB_ENDED" and arrival["deliveryId"] == arrival["bodyId"]
    assert arrival["data"]["jobId"] == job["id"] and arrival["data"]["state"] == "SUCCEEDED" and arrival["data"]["exitCode"] == 0
    endpoint_id = payload["endpoint"]["id"]

    async def delivered() -> list[dict[str, Any]]:
        found = await deliveries(hooked.client, endpoint_id)
        return found if found and found[0]["state"] == "DELIVERED" else []

    [delivery] = await eventually(delivered, "the delivery is recorded as DELIVERED")
    assert delivery["deliveryId"] == arrival["deliveryId"] and delivery["eventKind"] == "JOB_ENDED"
    assert delivery["attempts"] == [{"number": 1, "statusCode": 200, "error": None}]
    # the secret was shown once: nothing that lists endpoints has it
    listed = await hooked.client.execute(ENDPOINTS)
    assert listed["webhookEndpoints"]["totalCount"] == 1 and "whsec_" not in str(listed)
    assert len(receiver.received()) == 1


async def test_failed_attempts_are_retried_with_the_same_delivery_id_until_one_succeeds(
    gateway_factory: Callable[..., Any], receiver: WebhookReceiver
) -> None:
    gateway = await gateway_factory(webhooks=LOOPBACK_WEBHOOKS.model_copy(update={"max_attempts": 5}))
    retried = await registered(gateway, receiver, "/fail/2", ["JOB_ENDED"])
    job = await submit(gateway.client, python_job("pass"))
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})

    async def delivered() -> list[dict[str, Any]]:
        found = await deliveries(gateway.client, retried["id"])
        return found if found and found[0]["state"] == "DELIVERED" else []

    [delivery] = await eventually(delivered, "the third attempt delivers", timeout=20)
    assert [attempt["statusCode"] for attempt in delivery["attempts"]] == [500, 500, 200]
    assert delivery["attempts"][0]["error"] == "the receiver answered HTTP 500" and delivery["attemptCount"] == 3
    arrivals = receiver.received()
    assert [arrival["attempt"] for arrival in arrivals] == [1, 2, 3]
    assert {arrival["deliveryId"] for arrival in arrivals} == {delivery["deliveryId"]} and all(arrival["valid"] for arrival in arrivals)


async def test_a_delivery_that_keeps_failing_ends_failed_after_its_attempts(
    gateway_factory: Callable[..., Any], receiver: WebhookReceiver
) -> None:
    gateway = await gateway_factory(webhooks=LOOPBACK_WEBHOOKS.model_copy(update={"max_attempts": 2}))
    endpoint = await registered(gateway, receiver, "/fail/99", ["JOB_ENDED"])
    job = await submit(gateway.client, python_job("pass"))
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})

    async def failed() -> list[dict[str, Any]]:
        found = await deliveries(gateway.client, endpoint["id"])
        return found if found and found[0]["state"] == "FAILED" else []

    [delivery] = await eventually(failed, "the delivery gives up", timeout=20)
    assert [attempt["statusCode"] for attempt in delivery["attempts"]] == [500, 500]


async def test_the_destination_is_checked_again_before_each_attempt(hooked: Gateway, receiver: WebhookReceiver) -> None:
    """As if the name now resolved inside the network (DNS rebinding): the attempt is refused, nothing is sent."""
    endpoint = await registered(hooked, receiver, "/ok", ["JOB_ENDED"])
    hooked.runtime.deliverer.destinations = DestinationPolicy(allowed_networks=(), allow_http_on_loopback=True)
    job = await submit(hooked.client, python_job("pass"))
    await wait_for_state(hooked.client, job["id"], {"SUCCEEDED"})

    async def refused() -> list[dict[str, Any]]:
        found = await deliveries(hooked.client, endpoint["id"])
        return found if found and found[0]["attemptCount"] >= 1 else []

    [delivery] = await eventually(refused, "an attempt is recorded")
    assert delivery["state"] == "PENDING" and delivery["attempts"][0]["statusCode"] is None
    assert delivery["attempts"][0]["error"].startswith("FORBIDDEN_DESTINATION")
    assert receiver.received() == []


async def test_a_budget_alert_is_delivered_to_an_endpoint_of_that_kind_only(hooked: Gateway, receiver: WebhookReceiver) -> None:
    await registered(hooked, receiver, "/ok", ["BUDGET_ALERT"])
    answer = await hooked.client.execute('mutation { setBudget(input: {amount: "0.000001"}) { userErrors { code } } }')
    assert answer["setBudget"]["userErrors"] == []
    job = await submit(hooked.client, python_job("import time; time.sleep(1.1)"))
    await wait_for_state(hooked.client, job["id"], {"SUCCEEDED"})
    arrivals = await eventually(lambda: len(receiver.received()) >= 3 and receiver.received(), "the three thresholds arrive", timeout=15)
    assert sorted(arrival["data"]["threshold"] for arrival in arrivals) == [50, 80, 100]
    assert all(arrival["type"] == "BUDGET_ALERT" and arrival["valid"] for arrival in arrivals)
    assert len({arrival["deliveryId"] for arrival in arrivals}) == 3


async def test_a_deleted_endpoint_receives_nothing_more(hooked: Gateway, receiver: WebhookReceiver) -> None:
    endpoint = await registered(hooked, receiver, "/ok", ["JOB_ENDED"])
    deleted = await hooked.client.execute(
        "mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { endpoint { id } userErrors { code } } }",
        {"id": endpoint["id"]},
    )
    assert deleted["deleteWebhookEndpoint"] == {"endpoint": {"id": endpoint["id"]}, "userErrors": []}
    again = await hooked.client.execute(
        "mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { userErrors { code } } }", {"id": endpoint["id"]}
    )
    assert again["deleteWebhookEndpoint"]["userErrors"] == [{"code": "WEBHOOK_NOT_FOUND"}]
    job = await submit(hooked.client, python_job("pass"))
    await wait_for_state(hooked.client, job["id"], {"SUCCEEDED"})
    assert (await hooked.client.execute(ENDPOINTS))["webhookEndpoints"]["totalCount"] == 0
    assert receiver.received() == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://10.1.2.3/hook", "FORBIDDEN_DESTINATION"),
        ("https://192.168.0.10/hook", "FORBIDDEN_DESTINATION"),
        ("https://169.254.169.254/latest", "FORBIDDEN_DESTINATION"),
        ("https://[fe80::1]/hook", "FORBIDDEN_DESTINATION"),
        ("https://[::ffff:10.0.0.1]/hook", "FORBIDDEN_DESTINATION"),
        ("http://10.1.2.3/hook", "FORBIDDEN_DESTINATION"),
        ("ftp://example.org/hook", "INVALID_URL"),
        ("not a url", "INVALID_URL"),
        ("https://user:password@127.0.0.1/hook", "INVALID_URL"),
        ("https://no-such-host.invalid/hook", "UNRESOLVABLE_HOST"),
    ],
)
async def test_a_destination_inside_the_network_or_malformed_is_refused_with_a_code(hooked: Gateway, url: str, code: str) -> None:
    """Loopback is allowed here (the tests' setting); the other internal ranges are not."""
    payload = await create_endpoint(hooked.client, url, ["JOB_ENDED"])
    assert payload["endpoint"] is None and payload["secret"] is None
    assert [(error["code"], error["field"]) for error in payload["userErrors"]] == [(code, ["url"])], payload
    assert (await hooked.client.execute(ENDPOINTS))["webhookEndpoints"]["totalCount"] == 0


async def test_by_default_loopback_and_plain_http_are_refused(gateway: Gateway) -> None:
    cases = {
        "https://127.0.0.1:9/hook": "FORBIDDEN_DESTINATION",
        "https://localhost/hook": "FORBIDDEN_DESTINATION",
        "https://[::1]/hook": "FORBIDDEN_DESTINATION",
        "http://203.0.113.7/hook": "INSECURE_URL",
    }
    for url, code in cases.items():
        payload = await create_endpoint(gateway.client, url, ["JOB_ENDED"])
        assert [error["code"] for error in payload["userErrors"]] == [code], (url, payload)
    empty = await create_endpoint(gateway.client, "https://127.0.0.1/hook", [])
    assert {error["code"] for error in empty["userErrors"]} == {"INVALID_EVENT_KINDS", "FORBIDDEN_DESTINATION"}
    assert (await gateway.client.execute(ENDPOINTS))["webhookEndpoints"]["totalCount"] == 0


async def test_plain_http_needs_the_setting_even_to_an_allowed_loopback(gateway_factory: Callable[..., Any]) -> None:
    gateway = await gateway_factory(webhooks=WebhookSettings(allowed_networks=["127.0.0.0/8"]))
    payload = await create_endpoint(gateway.client, "http://127.0.0.1:9/hook", ["JOB_ENDED"])
    assert [error["code"] for error in payload["userErrors"]] == ["INSECURE_URL"]
    allowed = await create_endpoint(gateway.client, "https://127.0.0.1:9/hook", ["JOB_ENDED"])
    assert allowed["userErrors"] == [] and allowed["endpoint"]["url"] == "https://127.0.0.1:9/hook"


async def test_another_account_neither_sees_nor_deletes_an_endpoint(hooked: Gateway, receiver: WebhookReceiver) -> None:
    endpoint = await registered(hooked, receiver, "/ok", ["JOB_ENDED"])
    made = await hooked.runtime.access.create_account("other-team")
    assert made.account is not None
    token = await hooked.runtime.access.create_token(made.account.id, "other", ["read", "submit"])
    assert token.secret is not None
    other = hooked.connect(token.secret)
    assert (await other.execute(ENDPOINTS))["webhookEndpoints"]["totalCount"] == 0
    assert (await other.execute("query($id: ID!) { node(id: $id) { id } }", {"id": endpoint["id"]}))["node"] is None
    refused = await other.execute(
        "mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { userErrors { code } } }", {"id": endpoint["id"]}
    )
    assert refused["deleteWebhookEndpoint"]["userErrors"] == [{"code": "WEBHOOK_NOT_FOUND"}]
    foreign = await create_endpoint(
        other, receiver.url("/ok"), ["JOB_ENDED"], accountId=(await hooked.client.execute("{ viewer { id } }"))["viewer"]["id"]
    )
    assert [error["code"] for error in foreign["userErrors"]] == ["ACCOUNT_NOT_FOUND"]
    assert (await hooked.admin.execute(ENDPOINTS))["webhookEndpoints"]["totalCount"] == 1


async def test_another_domain_publishes_a_service_state_with_one_call(hooked: Gateway, receiver: WebhookReceiver) -> None:
    """What the inference services will call: ``services.webhooks.publish`` (or ``enqueue_event`` in a transaction)."""
    await registered(hooked, receiver, "/ok", ["SERVICE_STATE"])
    assert hooked.runtime.default_viewer is not None
    account = hooked.runtime.default_viewer.account_id
    await hooked.runtime.webhooks.publish(account, EventKind.SERVICE_STATE, {"serviceId": "U2VydmljZTox", "state": "READY"})
    await hooked.runtime.webhooks.publish(account, EventKind.JOB_ENDED, {"jobId": "not listened to"})
    [arrival] = await eventually(receiver.received, "the service state arrived")
    assert arrival["valid"] and arrival["type"] == "SERVICE_STATE" and arrival["data"] == {"serviceId": "U2VydmljZTox", "state": "READY"}
