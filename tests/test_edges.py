"""Hostile edges through the real HTTP face: text that only looks like what it should be."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
import websockets

from connectors.files import MAX_LINE_CHARS
from resolvers.billing.focus import NUMERIC
from tests.billing_helpers import PRICE, adjust, bill, job_usage, make_admin
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import SUBMIT, python_job, submit, wait_for_state

#: characters that `str.isdigit` accepts: superscripts, Arabic-Indic and full-width digits
LOOKALIKE_DIGITS = ("²", "٣", "\uff13", "1²", "٣٣", "⁹9")


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def codes(body: dict[str, Any]) -> list[str]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


async def test_ids_and_cursors_with_lookalike_digits_answer_like_unknown_ones(gateway: Gateway) -> None:
    for digits in LOOKALIKE_DIGITS:
        for key in (f"Job:{digits}", f"Dataset:{digits}", f"ComputeCenter:{digits}", f"ComputeUnit:{digits}/cpu", f"Bill:{digits}"):
            response = await gateway.client.post("query($id: ID!) { node(id: $id) { id } }", {"id": b64(key)})
            assert response.status_code == 200, (key, response.text)
            assert response.json() == {"data": {"node": None}, "extensions": response.json().get("extensions")}, key
        cancel = await gateway.client.execute(
            "mutation($id: ID!) { cancelJob(input: {jobId: $id}) { userErrors { code } } }", {"id": b64(f"Job:{digits}")}
        )
        assert [e["code"] for e in cancel["cancelJob"]["userErrors"]] == ["JOB_NOT_FOUND"], digits
        page = await gateway.client.post("query($after: String) { jobs(after: $after) { totalCount } }", {"after": b64(f"cursor:{digits}")})
        assert codes(page.json()) == ["BAD_USER_INPUT"], (digits, page.text)
        size = await gateway.client.post(
            'mutation($s: BigInt) { registerDataset(input: {name: "d", uri: "s3://b/k", sizeBytes: $s}) { userErrors { code } } }',
            {"s": digits},
        )
        assert size.status_code < 500 and "INTERNAL" not in codes(size.json()), (digits, size.text)


async def test_a_focus_export_never_hands_a_spreadsheet_a_formula(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    names = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tname", "\rname"]
    jobs = [await submit(gql, python_job("pass", name=name)) for name in names]
    for job in jobs:
        await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    bill_id = (await job_usage(gql, jobs[0]["id"]))["usage"]["bill"]["id"]
    admin = make_admin(gateway)
    assert (await adjust(admin, bill_id, "-0.010000", "=cmd|' /C calc'!A0"))["userErrors"] == []
    response = await admin.http.get((await bill(admin, bill_id))["csvUrl"])
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    cells = [value for row in rows for column, value in row.items() if column not in NUMERIC]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    assert sorted(row["ResourceName"] for row in rows if row["ChargeCategory"] == "Usage") == sorted("'" + name for name in names)
    adjustment = next(row for row in rows if row["ChargeCategory"] == "Adjustment")
    assert adjustment["BilledCost"] == "-0.010000" and Decimal(adjustment["BilledCost"]) < 0  # numbers stay numbers


async def test_concurrent_twins_all_get_the_one_job_or_one_clear_refusal(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory()
    gql = gateway.client
    job = python_job("pass", name="twin", idempotencyKey="one-key")
    answers = await asyncio.gather(*(gql.post(SUBMIT, {"input": job}) for _ in range(50)))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200][:2]
    bodies = [answer.json() for answer in answers]
    assert [body for body in bodies if "errors" in body] == []
    assert [body for body in bodies if body["data"]["submitJob"]["userErrors"]] == []
    ids = {body["data"]["submitJob"]["job"]["id"] for body in bodies}
    assert len(ids) == 1
    assert (await gql.execute("{ jobs(first: 100) { totalCount } }"))["jobs"]["totalCount"] == 1

    register = 'mutation { registerDataset(input: {name: "twin", uri: "s3://b/k"}) { dataset { id } userErrors { code } } }'
    made = await asyncio.gather(*(gql.post(register) for _ in range(30)))
    payloads = [answer.json() for answer in made]
    assert [body for body in payloads if "errors" in body] == []
    outcomes = sorted(str([e["code"] for e in body["data"]["registerDataset"]["userErrors"]]) for body in payloads)
    assert outcomes == ["['ALREADY_EXISTS']"] * 29 + ["[]"]

    account = 'mutation { createAccount(input: {name: "twins", members: ["a@b.example"]}) { account { id } userErrors { code } } }'
    accounts = [answer.json() for answer in await asyncio.gather(*(gateway.admin.post(account) for _ in range(30)))]
    assert [body for body in accounts if "errors" in body] == []
    assert sum(body["data"]["createAccount"]["account"] is not None for body in accounts) == 1


async def test_a_subscription_over_plain_http_is_told_to_use_a_websocket(gateway: Gateway) -> None:
    query = 'subscription { jobEvents(jobId: "Sm9iOjE") { seq } }'
    for response in (await gateway.client.post(query), await gateway.client.http.get("/graphql", params={"query": query})):
        body = response.json()
        assert 400 <= response.status_code < 500, (response.status_code, body)
        assert codes(body) == ["SUBSCRIPTION_NEEDS_WEBSOCKET"] and "WebSocket" in body["errors"][0]["message"]


async def test_deeply_nested_json_gets_a_400_over_http_and_4400_over_a_websocket(gateway: Gateway) -> None:
    deep = "[" * 5_000 + "]" * 5_000  # past the decoder's recursion limit
    medium = "[" * 500 + "]" * 500  # parses, but deeper than any request needs
    headers = {"content-type": "application/json"}
    for nested in (deep, medium):
        bodies = [
            await gateway.client.http.post(
                "/graphql", content=f'{{"query": "{{ __typename }}", "variables": {{"v": {nested}}}}}', headers=headers
            ),
            await gateway.client.http.post("/graphql", content=nested, headers=headers),
            await gateway.client.http.get("/graphql", params={"query": "{ __typename }", "variables": f'{{"v": {nested}}}'}),
            await gateway.client.http.get("/graphql", params={"query": "{ __typename }", "extensions": f'{{"v": {nested}}}'}),
        ]
        for response in bodies:
            assert response.status_code == 400, (response.status_code, response.text[:300])
            assert response.json()["errors"][0]["message"], response.text[:300]
        async with websockets.connect(gateway.client.ws_url, subprotocols=["graphql-transport-ws"], max_size=None) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": {"token": gateway.client.token}}))
            assert json.loads(await socket.recv())["type"] == "connection_ack"
            await socket.send(
                f'{{"id": "1", "type": "subscribe", "payload": {{"query": "{{ __typename }}", "variables": {{"v": {nested}}}}}}}'
            )
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400 and closed.value.rcvd.reason


async def test_the_logs_of_a_job_that_writes_one_enormous_line_cost_what_they_return(gateway: Gateway) -> None:
    gql = gateway.client
    script = "import sys; sys.stdout.write('x' * (16 * 1024 * 1024) + 'END'); sys.stdout.flush()"
    job = await submit(gql, python_job(script, name="one-line"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    response = await gql.post("query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 5) } } }", {"id": job["id"]})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body.get("errors")
    logs = body["data"]["node"]["logs"]
    assert logs.endswith("END") and logs.startswith("[…] ") and len(logs) <= MAX_LINE_CHARS + 10
    many = "import sys\nfor n in range(300): print(f'line {n}')\nsys.stdout.write('y' * 100000 + '\\n')"
    job = await submit(gql, python_job(many, name="lines"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    tail = (await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 3) } } }", {"id": job["id"]}))["node"]["logs"]
    assert tail.splitlines()[:2] == ["line 298", "line 299"] and tail.splitlines()[2] == "[…] " + "y" * MAX_LINE_CHARS


async def test_an_anonymous_flood_of_aliased_introspection_is_refused_before_it_runs(gateway: Gateway) -> None:
    anonymous = gateway.connect()
    flood = "{ " + " ".join(f"s{n}: __schema {{ types {{ name fields {{ name }} }} }}" for n in range(19)) + " }"
    refused = await anonymous.post(flood)
    assert refused.status_code == 400 and codes(refused.json()) == ["QUERY_TOO_COMPLEX"], refused.text[:300]
    assert refused.json()["errors"][0]["extensions"]["limit"] == "introspection" and "data" not in refused.json()
    fetch = await anonymous.post('{ __schema { queryType { name } } __type(name: "Job") { name } }')  # GraphiQL's fetch still works
    assert fetch.status_code == 200 and fetch.json()["data"]["__type"] == {"name": "Job"}
