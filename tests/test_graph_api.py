"""The graph's conventions through HTTP: centers, nodes, paging, data lineage, errors, query counts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.data_helpers import file_at
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.statements import COUNTED, statements_of

pytestmark = pytest.mark.both_databases  # keyset pages, JSON columns and statement counts are the queries'

REGISTER_DATASET = """
mutation($input: RegisterDatasetInput!) {
  registerDataset(input: $input) { dataset { id name version sizeBytes checksum } userErrors { code field message } }
}
"""
REGISTER_MODEL = """
mutation($input: RegisterModelInput!) {
  registerModel(input: $input) { model { id name } userErrors { code field message } }
}
"""


async def test_centers_with_compute_units_status_and_catalog(gateway: Gateway) -> None:
    data = await gateway.client.execute(
        """{
          centers { totalCount edges { node { id name kind region status { state latencyMs }
            computeUnits { id devicesTotal devicesAvailable standardUnitsTotal accelerator { model kind standardUnits }
                           pricePerUnitHour { amount currency } } } } }
          capacity { standardUnitsTotal standardUnitsAvailable }
          acceleratorCatalog { model vendor kind fp16Tflops standardUnits }
        }"""
    )
    center = data["centers"]["edges"][0]["node"]
    assert data["centers"]["totalCount"] == 1
    assert (center["name"], center["kind"], center["status"]["state"]) == ("local", "LOCAL", "UP")
    unit = center["computeUnits"][0]
    assert unit["accelerator"]["model"] == "cpu-core" and unit["devicesTotal"] == 2
    assert unit["pricePerUnitHour"] == {"amount": "0.500000", "currency": "CNY"}
    assert unit["standardUnitsTotal"] == round(2 * unit["accelerator"]["standardUnits"], 4)
    assert data["capacity"]["standardUnitsTotal"] == unit["standardUnitsTotal"]
    models = {entry["model"]: entry for entry in data["acceleratorCatalog"]}
    assert {"nvidia-a100-80gb", "nvidia-h100-80gb", "huawei-ascend-910b", "cpu-core"} <= set(models)
    assert models["nvidia-a100-80gb"]["standardUnits"] == 3.12
    node = await gateway.client.execute("query($id: ID!) { node(id: $id) { id ... on ComputeUnit { devicesTotal } } }", {"id": unit["id"]})
    assert node["node"] == {"id": unit["id"], "devicesTotal": 2}


async def test_datasets_models_and_jobs_are_linked_both_ways(gateway: Gateway) -> None:
    gql = gateway.client
    dataset_input = {
        "name": "imagenet-mini",
        "version": "2024",
        "uri": "s3://data/imagenet-mini",
        "format": "parquet",
        "sizeBytes": "9007199254740993",
        "checksum": "sha256:" + "a" * 64,
    }
    dataset = (await gql.execute(REGISTER_DATASET, {"input": dataset_input}))["registerDataset"]
    assert dataset["userErrors"] == []
    assert dataset["dataset"]["sizeBytes"] == "9007199254740993"  # beyond 2^53: a string keeps every digit
    dataset_id = dataset["dataset"]["id"]
    job = await submit(gql, python_job("print('training')", name="train", kind="TRAINING", inputDatasetIds=[dataset_id]))
    ended = await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"})
    assert ended["failureReason"].startswith("UNSUPPORTED_URI: imagenet-mini")  # an s3:// input cannot be staged here
    model = (
        await gql.execute(
            REGISTER_MODEL, {"input": {"name": "resnet", "uri": "s3://models/resnet", "framework": "pytorch", "trainedByJobId": job["id"]}}
        )
    )["registerModel"]
    assert model["userErrors"] == []
    linked = await gql.execute(
        """query($job: ID!, $dataset: ID!, $model: ID!) {
          job: node(id: $job) { ... on Job { inputs { id name } outputModel { id name } owner { name } } }
          dataset: node(id: $dataset) { ... on Dataset { usedBy { totalCount edges { node { id } } } } }
          model: node(id: $model) { ... on Model { trainedBy { id } trainedOn { id } } }
        }""",
        {"job": job["id"], "dataset": dataset_id, "model": model["model"]["id"]},
    )
    assert linked["job"]["inputs"] == [{"id": dataset_id, "name": "imagenet-mini"}]
    assert linked["job"]["outputModel"] == {"id": model["model"]["id"], "name": "resnet"}
    assert linked["job"]["owner"]["name"] == "default"
    assert linked["dataset"]["usedBy"]["edges"] == [{"node": {"id": job["id"]}}]
    assert linked["model"] == {"trainedBy": {"id": job["id"]}, "trainedOn": [{"id": dataset_id}]}
    listed = await gql.execute("{ datasets { totalCount } models { totalCount edges { node { name } } } }")
    assert listed["datasets"]["totalCount"] == 1 and listed["models"]["edges"] == [{"node": {"name": "resnet"}}]


async def test_bad_dataset_and_model_input_is_a_user_error(gateway: Gateway) -> None:
    gql = gateway.client
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "", "uri": "s3://x/y"}, "INVALID_NAME"),
        ({"name": "d", "uri": "not a uri"}, "INVALID_URI"),
        ({"name": "d", "uri": "s3://x/y", "checksum": "md5:xyz"}, "INVALID_CHECKSUM"),
        ({"name": "d", "uri": "s3://x/y", "sizeBytes": "-1"}, "INVALID_SIZE"),
    ]
    for payload, code in cases:
        answer = (await gql.execute(REGISTER_DATASET, {"input": payload}))["registerDataset"]
        assert answer["dataset"] is None and [error["code"] for error in answer["userErrors"]] == [code], payload
    ok = {"name": "d", "uri": "s3://x/y"}
    assert (await gql.execute(REGISTER_DATASET, {"input": ok}))["registerDataset"]["userErrors"] == []
    twice = (await gql.execute(REGISTER_DATASET, {"input": ok}))["registerDataset"]
    assert [error["code"] for error in twice["userErrors"]] == ["ALREADY_EXISTS"]
    model = (await gql.execute(REGISTER_MODEL, {"input": {"name": "m", "uri": "s3://m/1", "trainedByJobId": "Sm9iOjQ0"}}))["registerModel"]
    assert model["model"] is None and [error["code"] for error in model["userErrors"]] == ["JOB_NOT_FOUND"]
    assert (await gql.execute("{ datasets { totalCount } models { totalCount } }")) == {
        "datasets": {"totalCount": 1},
        "models": {"totalCount": 0},
    }


async def test_jobs_page_by_keyset_cursor(gateway: Gateway) -> None:
    gql = gateway.client
    ids = [(await submit(gql, python_job("print(1)", name=f"page-{n}")))["id"] for n in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page = (
            await gql.execute(
                "query($after: String) { jobs(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }",
                {"after": after},
            )
        )["jobs"]
        assert page["totalCount"] == 5
        seen.extend(edge["node"]["id"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))
    too_many = await gql.post("{ jobs(first: 101) { totalCount } }")
    assert too_many.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad_cursor = await gql.post('{ jobs(after: "zzz") { totalCount } }')
    assert bad_cursor.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_node_and_nodes_answer_unknown_ids_with_null(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, python_job("print(1)"))
    data = await gql.execute(
        'query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } node(id: "garbage") { id } }',
        {"ids": [job["id"], "Sm9iOjk5OTk", "RGF0YXNldDox", "!!"]},
    )
    assert data["nodes"] == [{"id": job["id"], "__typename": "Job"}, None, None, None]
    assert data["node"] is None


async def test_listing_jobs_costs_the_same_statements_whatever_the_page_size(gateway: Gateway) -> None:
    gql = gateway.client
    uri = file_at(gateway, "local", "d")
    dataset = (await gql.execute(REGISTER_DATASET, {"input": {"name": "d", "uri": uri}}))["registerDataset"]["dataset"]
    for n in range(12):
        job = await submit(gql, python_job("print(1)", name=f"count-{n}", inputDatasetIds=[dataset["id"]]))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    query = "query($first: Int) { jobs(first: $first) { edges { node { id center { name } inputs { name } owner { name } outputModel { id } } } } }"
    await gql.execute("{ viewer { name } }")  # the owner, now in the account cache
    with statements_of(gateway) as statements:
        await gql.execute(query, {"first": 2}, headers=COUNTED)
        small = len(statements)
        statements.clear()
        data = await gql.execute(query, {"first": 12}, headers=COUNTED)
        large = len(statements)
    assert len(data["jobs"]["edges"]) == 12
    assert all(edge["node"]["inputs"] == [{"name": "d"}] for edge in data["jobs"]["edges"])
    # jobs, inputs, output models (the owners come from the account cache)
    assert small == large == 3, (small, large, statements)


async def test_malformed_requests_get_a_400_with_a_graphql_error_body(gateway: Gateway) -> None:
    http = gateway.client.http
    cases = [
        (dict(content=b"{not json", headers={"content-type": "application/json"}), "BAD_REQUEST"),
        (dict(json={"query": "{ jobs( "}), "GRAPHQL_PARSE_FAILED"),
        (dict(json={"query": "{ noSuchField }"}), "GRAPHQL_VALIDATION_FAILED"),
        (dict(json={"query": "query($n: Int) { jobs(first: $n) { totalCount } }", "variables": {"n": "ten"}}), "GRAPHQL_VALIDATION_FAILED"),
        (dict(json={"variables": {}}), "BAD_REQUEST"),
    ]
    for kwargs, code in cases:
        response = await http.post("/graphql", **kwargs)
        assert response.status_code == 400, (kwargs, response.text)
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == code, body
        assert "Traceback" not in response.text
    assert (await gateway.client.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0
    mutation_over_get = await http.get("/graphql", params={"query": 'mutation { cancelJob(input: {jobId: "x"}) { job { id } } }'})
    assert mutation_over_get.status_code in (400, 405)


async def test_graphiql_and_health_probes(gateway: Gateway) -> None:
    http = gateway.client.http
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_operators_extend_and_override_the_catalog(gateway_factory: Any) -> None:
    catalog = [
        {"model": "acme-x1", "vendor": "ACME", "kind": "NPU", "memory_gb": 32, "fp16_tflops": 250.0},
        {"model": "cpu-core", "fp16_tflops": 1.0},
    ]
    gateway: Gateway = await gateway_factory(catalog=catalog)
    data = await gateway.client.execute("{ acceleratorCatalogVersion acceleratorCatalog { model vendor kind standardUnits } }")
    models = {entry["model"]: entry for entry in data["acceleratorCatalog"]}
    assert models["acme-x1"] == {"model": "acme-x1", "vendor": "ACME", "kind": "NPU", "standardUnits": 2.5}
    assert models["cpu-core"]["standardUnits"] == 0.01 and models["cpu-core"]["vendor"] == "generic"
    assert data["acceleratorCatalogVersion"].endswith("+local")
    units = await gateway.client.execute("{ computeUnits { edges { node { standardUnitsTotal } } } }")
    assert units["computeUnits"]["edges"][0]["node"]["standardUnitsTotal"] == 0.02


async def test_a_successful_job_registers_the_model_it_was_asked_to_make(gateway: Gateway) -> None:
    gql = gateway.client
    uri = file_at(gateway, "local", "corpus")
    dataset = (await gql.execute(REGISTER_DATASET, {"input": {"name": "corpus", "uri": uri}}))["registerDataset"]["dataset"]
    made = await submit(
        gql, python_job("print('trained')", name="trainer", kind="TRAINING", outputModelName="tiny-lm", inputDatasetIds=[dataset["id"]])
    )
    failed = await submit(gql, python_job("import sys; sys.exit(1)", name="broken-trainer", outputModelName="never"))
    await wait_for_state(gql, made["id"], {"SUCCEEDED"})
    await wait_for_state(gql, failed["id"], {"FAILED"})
    answer = await gql.execute(
        """query($made: ID!, $failed: ID!) {
          made: node(id: $made) { ... on Job { outputModel { name version uri trainedBy { id } trainedOn { name } } } }
          failed: node(id: $failed) { ... on Job { outputModel { id } } }
          models { totalCount }
        }""",
        {"made": made["id"], "failed": failed["id"]},
    )
    model = answer["made"]["outputModel"]
    assert model["name"] == "tiny-lm" and model["version"].startswith("job-") and model["uri"].startswith("file:///")
    assert model["trainedBy"] == {"id": made["id"]} and model["trainedOn"] == [{"name": "corpus"}]
    assert answer["failed"]["outputModel"] is None and answer["models"]["totalCount"] == 1
