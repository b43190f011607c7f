"""aicn as a Federation v2 subgraph: composed by a real router with a second subgraph."""

from __future__ import annotations

import json
from typing import Any

import httpx

from aicn.security_settings import GraphSettings
from tests.conftest import Gateway
from tests.federation_router import router, served_directory
from tests.jobs_helpers import python_job, submit, wait_for_state

FEDERATED = {"graph": GraphSettings(federation=True)}


async def test_service_sdl_is_public_and_carries_the_keys(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(**FEDERATED)
    anonymous = gateway.connect()
    response = await anonymous.post("{ _service { sdl } }")
    body = response.json()
    assert response.status_code == 200, body
    sdl = body["data"]["_service"]["sdl"]
    assert 'type Account implements Node @key(fields: "id"' in sdl
    assert "@listSize(assumedSize: 20" in sdl


async def test_entities_resolve_through_the_tenant_rules(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(**FEDERATED)
    viewer = (await gateway.client.execute("{ viewer { id name } }"))["viewer"]
    created = await gateway.admin.execute('mutation { createAccount(input: {name: "other"}) { account { id } } }')
    other = created["createAccount"]["account"]["id"]
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Account { id name } } }"
    representations = [
        {"__typename": "Account", "id": viewer["id"]},
        {"__typename": "Account", "id": other},  # another account's: null, like a missing one
        {"__typename": "Job", "id": viewer["id"]},  # an id of another type: null
    ]
    data = await gateway.client.execute(query, {"r": representations})
    assert data["_entities"] == [viewer, None, None]
    assert (await gateway.admin.execute(query, {"r": representations[1:2]}))["_entities"] == [{"id": other, "name": "other"}]
    anonymous = await gateway.connect().post(query, {"r": representations})
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_router_joins_aicn_and_another_subgraph(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(**FEDERATED)
    assert gateway.client.token is not None
    async with served_directory() as directory, router({"aicn": f"{gateway.url}/graphql", "directory": directory}) as url:
        async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {gateway.client.token}"}) as http:
            response = await http.post(url, json={"query": "{ viewer { id name team } directorySize }"})
            body = response.json()
            assert response.status_code == 200, body
            assert "errors" not in body, body
            viewer = body["data"]["viewer"]
            assert viewer["name"] == "default"
            assert viewer["team"] == "directory:" + viewer["id"][:8]
            assert body["data"]["directorySize"] == 1
            # a token is still a token behind the router: without one, aicn refuses
        async with httpx.AsyncClient(timeout=30) as http:
            body = (await http.post(url, json={"query": "{ viewer { id team } }"})).json()
            assert body["errors"], body


async def test_a_subscription_through_hive_gateway(gateway_factory: Any) -> None:
    """Hive Gateway subscribes to aicn over graphql-transport-ws, and streams to its client over SSE."""
    gateway: Gateway = await gateway_factory(**FEDERATED)
    job = await submit(gateway.client, python_job("print('through the router')"))
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    query = "subscription($id: ID!) { jobEvents(jobId: $id) { seq kind state } }"
    async with router({"aicn": f"{gateway.url}/graphql"}, script="hive.mjs") as url:
        headers = {"authorization": f"Bearer {gateway.client.token}", "accept": "text/event-stream"}
        states: list[str] = []
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{url}graphql", json={"query": query, "variables": {"id": job["id"]}}, headers=headers
            ) as stream:
                assert stream.status_code == 200, await stream.aread()
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and line[5:].strip():
                        payload = json.loads(line[5:])
                        assert "errors" not in payload, payload
                        states.append(payload["data"]["jobEvents"]["state"])
                    if line.startswith("event: complete") or "SUCCEEDED" in states:
                        break
        assert states[-1] == "SUCCEEDED", states
