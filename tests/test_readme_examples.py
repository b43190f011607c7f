"""Every GraphQL example of the README runs as written against a fresh gateway with the default limits.

The examples are taken from the README's ```graphql blocks, in order, one operation at a time;
only the placeholders the README asks a reader to fill in are filled in (an id from an earlier
answer, 64 hex digits). A fresh gateway's first job is ``Sm9iOjE`` and its first bill ``QmlsbDox``,
the ids the README shows.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import websockets
from graphql import DocumentNode, OperationDefinitionNode, OperationType, parse, print_ast

from aicn.security_settings import LimitSettings
from tests.client import GraphQLClient
from tests.conftest import Gateway

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_operations() -> list[OperationDefinitionNode]:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    return [d for block in blocks for d in parse(block).definitions if isinstance(d, OperationDefinitionNode)]


def fill_in(text: str, ids: dict[str, str]) -> str:
    text = text.replace("<64 hex digits>", "0" * 64)
    for placeholder, value in ids.items():
        text = text.replace(f"<{placeholder}>", value)
    assert "<" not in text, f"a placeholder the test does not know: {text}"
    return text


def assert_clean(body: dict[str, Any], text: str) -> None:
    assert "errors" not in body, (text, body["errors"])


async def run_subscription(client: GraphQLClient, text: str, trigger: Any) -> list[dict[str, Any]]:
    """Run ``text`` until it completes, or, for an endless stream, until ``trigger`` (repeated until then:
    the stream may not be listening yet when it first fires) made it send one answer."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": client.token}}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "connection_ack"
        operation = uuid.uuid4().hex
        await socket.send(json.dumps({"id": operation, "type": "subscribe", "payload": {"query": text}}))
        triggered = None if trigger is None else asyncio.create_task(trigger())
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 60))
            if message["type"] == "ping":
                await socket.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] in ("next", "complete"), (text, message)
            if message["type"] == "complete":
                break
            assert_clean(message["payload"], text)
            received.append(message["payload"]["data"])
            if triggered is not None:
                triggered.cancel()
                break
    return received


async def test_every_readme_example_runs_with_the_default_limits(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=LimitSettings())
    client = gateway.admin
    ids: dict[str, str] = {}
    operations = readme_operations()
    assert len(operations) >= 15
    costs: dict[str, int] = {}
    for operation in operations:
        text = fill_in(print_ast(DocumentNode(definitions=[operation])), ids)
        if operation.operation is OperationType.SUBSCRIPTION:
            trigger = None
            if "jobUpdates" in text:

                async def trigger() -> None:
                    for _ in range(100):
                        await client.execute(
                            'mutation { submitJob(input: {name: "tick", command: ["true"], request: {devices: 1, maxDurationMinutes: 1}}) { job { id } } }'
                        )
                        await asyncio.sleep(0.5)

            elif "centerStatus" in text:

                async def trigger() -> None:  # what the health monitor publishes when a center's state changes
                    center = gateway.runtime.registry.all()[0]
                    for _ in range(100):
                        await gateway.runtime.bus.publish("centers", {"center_id": center.id, "state": "UP", "message": None})
                        await asyncio.sleep(0.2)

            received = await run_subscription(client, text, trigger)
            assert received, text
            continue
        response = await client.post(text)
        body = response.json()
        assert response.status_code == 200, (text, body)
        assert_clean(body, text)
        costs[text.split("\n")[1].strip()[:40]] = body["extensions"]["cost"]["requestedQueryCost"]
        data = body["data"]
        if "createAccount" in data:
            ids["account id"] = data["createAccount"]["account"]["id"]
        if "createApiToken" in data:
            ids["token id"] = data["createApiToken"]["token"]["id"]
    assert max(costs.values()) <= LimitSettings().max_cost, costs
