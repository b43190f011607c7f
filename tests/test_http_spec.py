"""GraphQL over HTTP as its spec says: media types and status codes, no mutations over GET,
CSRF protection, CORS (off unless configured), request ids."""

from __future__ import annotations

import json
from typing import Any

from aicn.security_settings import HttpSettings
from tests.conftest import Gateway
from tests.jobs_helpers import python_job, submit

GRAPHQL_RESPONSE = "application/graphql-response+json"
ACCEPT_NEW = {"accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"}


async def test_graphql_response_json_status_codes(gateway: Gateway) -> None:
    http = gateway.client.http
    for body in (
        {"query": "{ jobs( "},
        {"query": "{ noSuchField }"},
        {"query": "query($n: Int) { jobs(first: $n) { totalCount } }", "variables": {"n": "ten"}},
    ):
        response = await http.post("/graphql", json=body, headers=ACCEPT_NEW)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert "data" not in response.json() and response.json()["errors"]
    ok = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=ACCEPT_NEW)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert ok.json()["data"] == {"viewer": {"name": "default"}}


async def test_partial_data_is_a_200(gateway: Gateway) -> None:
    job = await submit(gateway.client, python_job("print(1)"))
    query = "query($id: ID!) { node(id: $id) { ... on Job { name logs(tailLines: 0) } } }"
    response = await gateway.client.http.post("/graphql", json={"query": query, "variables": {"id": job["id"]}}, headers=ACCEPT_NEW)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"node": {"name": "test-job", "logs": None}}
    assert body["errors"][0]["path"] == ["node", "logs"] and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_legacy_json_clients_get_200_for_request_errors(gateway: Gateway) -> None:
    """`application/json` SHOULD get 200 on parse, validation and variable failures (the spec)."""
    http = gateway.client.http
    for body in (
        {"query": "{ jobs( "},
        {"query": "{ noSuchField }"},
        {"query": "query($n: Int) { jobs(first: $n) { totalCount } }", "variables": {"n": "ten"}},
    ):
        response = await http.post("/graphql", json=body, headers={"accept": "application/json"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/json"), response.text
        assert "data" not in response.json() and response.json()["errors"][0]["extensions"]["code"]
    refused = await gateway.connect().post("{ viewer { name } }", headers={"accept": "application/json"})
    assert refused.status_code == 401  # the gateway's own refusals keep their status
    ok = await http.post("/graphql", json={"query": "{ viewer { name } }"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/json")


async def test_no_mutations_over_get_and_only_get_and_post(gateway: Gateway) -> None:
    http = gateway.client.http
    mutation = await http.get("/graphql", params={"query": 'mutation { cancelJob(input: {jobId: "x"}) { job { id } } }'})
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    query = await http.get("/graphql", params={"query": "{ viewer { name } }"})
    assert query.status_code == 200 and query.json()["data"]["viewer"]["name"] == "default"
    put = await http.put("/graphql", json={"query": "{ viewer { name } }"})
    assert put.status_code == 405


async def test_requests_a_browser_could_forge_are_refused(gateway: Gateway) -> None:
    anonymous = gateway.connect().http
    forged_get = await anonymous.get("/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"})
    assert forged_get.status_code == 400 and "CSRF" in forged_get.json()["errors"][0]["message"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        forged_post = await anonymous.post("/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": content_type})
        assert forged_post.status_code == 400, content_type
        assert "CSRF" in forged_post.json()["errors"][0]["message"]
    preflighted = await anonymous.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"graphql-require-preflight": "1", "accept": "application/json"}
    )
    assert preflighted.status_code == 200 and preflighted.json()["data"] == {"__typename": "Query"}
    as_json = await anonymous.post("/graphql", json={"query": "{ __typename }"})
    assert as_json.status_code == 200


async def test_cors_is_off_unless_configured(gateway_factory: Any) -> None:
    preflight = {
        "origin": "http://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    closed: Gateway = await gateway_factory()
    answer = await closed.client.http.options("/graphql", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    opened: Gateway = await gateway_factory(http=HttpSettings(cors_origins=["http://app.example"]))
    answer = await opened.client.http.options("/graphql", headers=preflight)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://app.example"
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()
    post = await opened.client.http.post("/graphql", json={"query": "{ viewer { name } }"}, headers={"origin": "http://app.example"})
    assert post.headers["access-control-allow-origin"] == "http://app.example"
    other = await opened.client.http.options("/graphql", headers={**preflight, "origin": "http://evil.example"})
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


async def test_every_answer_has_a_request_id(gateway: Gateway) -> None:
    ok = await gateway.client.post("{ viewer { name } }")
    rejected = await gateway.connect().post("{ viewer { name } }")
    ids = {ok.headers["x-request-id"], rejected.headers["x-request-id"]}
    assert len(ids) == 2 and all(len(value) == 16 for value in ids)


async def test_batches_and_malformed_bodies_are_400(gateway: Gateway) -> None:
    http = gateway.client.http
    batch = await http.post("/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}])
    assert batch.status_code == 400
    for body in ({"query": 7}, {"query": "{ __typename }", "variables": [1]}, {"query": "{ __typename }", "extensions": "x"}):
        response = await http.post("/graphql", json=body)
        assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST", body


async def test_nan_and_infinity_are_not_json(gateway: Gateway) -> None:
    query = (
        'mutation($e: JSON) { submitJob(input: {name: "n", command: ["true"], request: {maxDurationMinutes: 1}, environment: $e})'
        " { userErrors { code } } }"
    )
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"query": {json.dumps(query)}, "variables": {{"e": {{"A": {constant}}}}}}}'
        response = await gateway.client.http.post("/graphql", content=body.encode(), headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST", response.text
    assert (await gateway.client.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0


async def test_the_root_leads_to_graphiql(gateway: Gateway) -> None:
    response = await gateway.client.http.get("/", headers={"accept": "text/html"})
    assert response.status_code == 307 and response.headers["location"] == "/graphql"
    page = await gateway.client.http.get("/", headers={"accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
