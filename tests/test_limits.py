"""Limits: depth, aliases, tokens, root fields and cost refused before anything runs; rate
limiting by cost; body size; subscriptions per connection; introspection switched off."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from aicn.security_settings import LimitSettings
from graph.core.context import Context
from graph.gate.cost import measure
from graph.loaders import Loaders
from graph.schema import schema
from resolvers.access.throttle import Throttle
from tests.conftest import GENEROUS_LIMITS, Gateway
from tests.statements import COUNTED, statements_of


def deep_query(levels: int) -> str:
    """`{ jobs { edges { node { owner { jobs { ... } } } } } }`, ``levels`` times over."""
    inner = "id"
    for _ in range(levels):
        inner = f"jobs {{ edges {{ node {{ owner {{ {inner} }} }} }} }}"
    return "{ viewer { " + inner + " } }"


def alias_bomb(count: int) -> str:
    return "{ " + " ".join(f"a{n}: viewer {{ name }}" for n in range(count)) + " }"


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels `viewer` selections from a few lines."""
    fragments = [f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ viewer {{ jobs {{ totalCount }} }} }}")
    return "{ ...F0 }\n" + "\n".join(fragments)


ABUSIVE = {
    "deep": deep_query(5),
    "aliases": alias_bomb(390),  # just under the token limit: refused before parsing all the same
    "huge first": "{ jobs(first: 1000000000) { edges { node { id events(first: 100) { edges { node { seq } } } } } } }",
    "fragment bomb": fragment_bomb(25),
    "tokens": "{ " + " ".join("viewer { name }" for _ in range(2_000)) + " }",
    "length": "{ viewer { name } }" + " " * 40_000,
    "long string": '{ jobs(filter: {nameContains: "' + "x" * 40_000 + '"}) { totalCount } }',
}


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts graphql-core executions: every resolver runs inside one."""
    import strawberry.schema.schema as strawberry_schema

    calls: list[str] = []
    original = strawberry_schema.execute

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append("execute")
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "execute", counted)
    yield calls


def code_of(response: Any) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def test_the_cost_of_connections_follows_first() -> None:
    from graphql import get_operation_ast, parse

    def cost(query: str, variables: dict[str, Any] | None = None) -> int:
        document = parse(query)
        return measure(schema._schema, document, get_operation_ast(document), variables).cost

    assert cost("{ acceleratorCatalog { model } }") == 1
    assert cost("{ jobs { edges { node { id } } } }") == 1 + 20  # default page: 20
    assert cost("{ jobs(first: 5) { totalCount edges { node { id owner { name } } } } }") == 1 + 1 + 5 * 2
    assert cost("query($n: Int) { jobs(first: $n) { edges { node { id } } } }", {"n": 50}) == 51
    assert cost('{ nodes(ids: ["a", "b", "c"]) { id } }') == 3
    assert cost('mutation { cancelJob(input: {jobId: "x"}) { job { id } } }') == 10 + 1 + 1
    assert cost(fragment_bomb(25)) > 2**25


async def test_abusive_operations_are_refused_before_anything_runs(gateway: Gateway, executions: list[str]) -> None:
    with statements_of(gateway, selects_only=False) as statements:
        for name, query in ABUSIVE.items():
            response = await gateway.client.post(query, headers=COUNTED)
            assert response.status_code == 400, (name, response.text[:300])
            body = response.json()
            assert "data" not in body and code_of(response) == "QUERY_TOO_COMPLEX", (name, body)
    assert executions == [] and statements == []
    for query, limit in ((alias_bomb(40), "aliases"), (alias_bomb(25), "rootFields"), (deep_query(3), "depth")):
        limits = {error["extensions"]["limit"] for error in (await gateway.client.post(query)).json()["errors"]}
        assert limit in limits, (limit, limits)
    ok = await gateway.client.post(deep_query(1))
    assert ok.status_code == 200 and executions == ["execute"]


async def test_refusing_an_abusive_operation_takes_under_10_ms(gateway: Gateway) -> None:
    runtime = gateway.runtime
    viewer = await runtime.access.authenticate(gateway.client.token or "")
    assert viewer is not None
    for name, query in ABUSIVE.items():
        timings = []
        for _ in range(15):
            context = Context(
                services=runtime.services, limits=runtime.settings.limits, viewer=viewer, make_loaders=Loaders, throttle_key="bench"
            )
            started = time.perf_counter()
            result = await schema.execute(query, context_value=context)
            timings.append((time.perf_counter() - started) * 1000)
            assert result.errors and result.errors[0].extensions["code"] == "QUERY_TOO_COMPLEX", name
        assert statistics.median(timings) < 10, (name, timings)


async def test_every_answer_reports_its_cost_and_the_budget_left(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=LimitSettings(bucket_size=100, max_cost=100, restore_rate=1.0))
    query = "{ jobs(first: 50) { edges { node { id } } } }"
    first = await gateway.client.post(query)
    assert first.status_code == 200
    cost = first.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 51
    assert cost["throttleStatus"]["maximumAvailable"] == 100 and cost["throttleStatus"]["restoreRate"] == 1.0
    assert 49 <= cost["throttleStatus"]["currentlyAvailable"] <= 50
    second = await gateway.client.post(query)
    assert second.status_code == 429 and code_of(second) == "THROTTLED" and "data" not in second.json()
    assert int(second.headers["retry-after"]) in (1, 2)
    assert second.json()["extensions"]["cost"]["requestedQueryCost"] == 51
    # buckets are per token: another token still has its whole budget
    other = await gateway.admin.post(query)
    assert other.status_code == 200
    too_big = await gateway.client.post("{ jobs(first: 100) { edges { node { id owner { name } } } } }")
    assert too_big.status_code == 400 and code_of(too_big) == "QUERY_TOO_COMPLEX"


#: what a dashboard asks every second: the README's centers query, capacity, a page of jobs
DASHBOARD = """{
  centers {
    edges { node { id name kind status { state latencyMs }
      computeUnits { accelerator { model standardUnits } devicesTotal devicesAvailable
                     standardUnitsAvailable pricePerUnitHour { amount currency } } } }
  }
  capacity { standardUnitsTotal standardUnitsAvailable }
  jobs(first: 20) { totalCount edges { node { id name state progress { fraction } center { name } } } }
}"""


async def test_a_dashboard_polling_every_second_for_an_hour_is_never_throttled(gateway_factory: Any) -> None:
    defaults = LimitSettings()
    gateway: Gateway = await gateway_factory(limits=defaults)
    clock = [1_000.0]
    gateway.runtime.throttle.clock = lambda: clock[0]
    costs = set()
    for _ in range(10):  # through HTTP: after each second the bucket is full again, so it stays so
        response = await gateway.client.post(DASHBOARD)
        assert response.status_code == 200, response.text
        report = response.json()["extensions"]["cost"]
        costs.add(report["requestedQueryCost"])
        assert report["throttleStatus"]["currentlyAvailable"] == defaults.bucket_size - report["requestedQueryCost"]
        clock[0] += 1.0
    (cost,) = costs
    throttle = Throttle(defaults.bucket_size, defaults.restore_rate, clock=lambda: clock[0])
    for _ in range(3_600):
        assert throttle.take("dashboard", cost).allowed
        clock[0] += 1.0
    # and the same dashboard at ten polls a second is throttled: the bucket still bounds a flood
    refused = 0
    for _ in range(600):
        refused += not throttle.take("dashboard", cost).allowed
        clock[0] += 0.1
    assert refused > 0


async def test_large_bodies_are_refused_with_413(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=GENEROUS_LIMITS.model_copy(update={"max_body_bytes": 4_096}))
    padding = " " * 5_000
    response = await gateway.client.post("{ viewer { name } }" + padding)
    assert response.status_code == 413 and code_of(response) == "REQUEST_TOO_LARGE"

    async def chunks() -> Any:  # no Content-Length: the limit counts what arrives
        yield b'{"query": "{ viewer { name } }'
        for _ in range(10):
            yield b" " * 1_000
        yield b'"}'

    streamed = await gateway.client.http.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert (await gateway.client.post("{ viewer { name } }")).status_code == 200


async def test_a_connection_runs_a_limited_number_of_subscriptions(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=GENEROUS_LIMITS.model_copy(update={"max_subscriptions_per_connection": 2}))
    async with websockets.connect(gateway.client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": gateway.client.token}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        for operation_id in ("1", "2", "3"):
            await socket.send(
                json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": "subscription { jobUpdates { id } }"}})
            )
        refusal = json.loads(await socket.recv())
        assert refusal["id"] == "3" and refusal["type"] == "error"
        assert refusal["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_introspection_can_be_switched_off(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=GENEROUS_LIMITS.model_copy(update={"introspection": False}))
    response = await gateway.client.post("{ __schema { queryType { name } } }")
    assert response.status_code == 400 and code_of(response) == "GRAPHQL_VALIDATION_FAILED"
    assert "introspection" in response.json()["errors"][0]["message"].lower()
    assert (await gateway.client.post("{ viewer { name } }")).status_code == 200


async def test_nested_introspection_is_capped(gateway: Gateway) -> None:
    query = "{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }"
    response = await gateway.client.post(query)
    assert response.status_code == 400 and "data" not in response.json()


async def test_nul_characters_are_refused_before_they_reach_the_database(gateway: Gateway) -> None:
    from tests.jobs_helpers import SUBMIT, python_job

    as_variable = await gateway.client.post(SUBMIT, {"input": python_job("print(1)", idempotencyKey="\x00")})
    as_literal = await gateway.client.post('{ jobs(filter: {nameContains: "a\\u0000b"}) { totalCount } }')
    surrogate = await gateway.client.http.post(
        "/graphql",
        content=b'{"query": "query($n: String) { jobs(filter: {nameContains: $n}) { totalCount } }", "variables": {"n": "\\ud800"}}',
        headers={"content-type": "application/json"},
    )
    for response in (as_variable, as_literal, surrogate):
        assert response.status_code == 400 and code_of(response) == "BAD_USER_INPUT", response.text
    assert (await gateway.client.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0


async def test_a_cursor_beyond_64_bits_is_a_bad_cursor(gateway: Gateway) -> None:
    import base64

    cursor = base64.urlsafe_b64encode(b"cursor:99999999999999999999999").decode().rstrip("=")
    response = await gateway.client.post(
        "query($after: String) { jobs(after: $after) { totalCount } datasets(after: $after) { totalCount } }", {"after": cursor}
    )
    assert all(error["extensions"]["code"] == "BAD_USER_INPUT" for error in response.json()["errors"]), response.text
