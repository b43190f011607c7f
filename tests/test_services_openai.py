"""OPENAI services end to end on a LOCAL center: a job trains a real (word bigram) model, a real
OpenAI-compatible server (tests/openai_server.py, Starlette + uvicorn) serves it, and the openai
Python client talks to the gateway's ``/services/{id}/v1`` as its base URL: chat completions
(whole and streamed), completions, embeddings, models; the reported token usage is counted on
the service and billed once on a TOKENS line; faults are OpenAI-shaped; tenants are kept apart."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
import time
from asyncio.subprocess import PIPE
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from aicn.settings import LocalConfig, ServicesConfig
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.service_helpers import INVOKE, STOP, deploy, deploy_errors, register_model, wait_for_service
from tests.test_auth import new_account
from tests.test_services_e2e import _key
from tests.waiting import eventually

SERVER = Path(__file__).with_name("openai_server.py")
AS_GATEWAY = LocalConfig(run_as="none")
PRICE = Decimal("2.50")  # per million tokens
FAST = ServicesConfig(
    tick_seconds=0.1,
    health_interval_seconds=0.5,
    cool_down_seconds=1.0,
    max_payload_bytes=10_000,
    price_per_million_tokens=PRICE,
)
TOKENS = """query($id: ID!) { node(id: $id) { ... on InferenceService {
  requestsTotal promptTokensTotal completionTokensTotal tokensTotal pricePerMillionTokens { amount currency } } } }"""
BILLS = """{ bills { edges { node { id csvUrl
  lines { edges { node { kind description tokens service { id name } amount { amount } } } } } } } }"""
TRAINED = "query($id: ID!) { node(id: $id) { ... on Job { outputModel { id uri } } } }"


@pytest.fixture
async def served(gateway_factory: Any) -> Gateway:
    gateway: Gateway = await gateway_factory([local_center(cores=8, price="36.00", local=AS_GATEWAY)], services=FAST)
    return gateway


def serve_command(*extra: str) -> list[str]:
    return [sys.executable, str(SERVER), "serve", "--port", "{port}", "--model-dir", "{model_dir}", *extra]


async def trained_bigram(gateway: Gateway) -> str:
    """A training job learns the bigram model into its AICN_OUTPUT_DIR; `outputModelName` registers it."""
    script = f"import os, runpy, sys; sys.argv = [{str(SERVER)!r}, 'train', os.environ['AICN_OUTPUT_DIR']]; runpy.run_path(sys.argv[0], run_name='__main__')"
    training = python_job(script, name="train-bigram", minutes=2, kind="TRAINING", outputModelName="bigram")
    training["command"][0] = sys.executable
    job = await submit(gateway.client, training)
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"}, timeout=60)
    model = (await gateway.client.execute(TRAINED, {"id": job["id"]}))["node"]["outputModel"]
    assert model["uri"].startswith("file://"), model
    return str(model["id"])


def client_for(gateway: Gateway, service: dict[str, Any], token: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + service["endpoint"], api_key=token or str(gateway.client.token), max_retries=0)


async def tokens_of(gateway: Gateway, service_id: str) -> dict[str, Any]:
    return dict((await gateway.client.execute(TOKENS, {"id": service_id}))["node"])


async def token_lines(gateway: Gateway) -> list[dict[str, Any]]:
    bills = (await gateway.client.execute(BILLS))["bills"]["edges"]
    lines = [{**line["node"], "csvUrl": bill["node"]["csvUrl"]} for bill in bills for line in bill["node"]["lines"]["edges"]]
    return [line for line in lines if line["kind"] == "TOKENS"]


@pytest.mark.both_databases  # metering and billing
async def test_the_openai_client_chats_streams_embeds_and_lists_models_and_the_tokens_are_counted_and_billed_once(
    served: Gateway,
) -> None:
    gql = served.client
    model_id = await trained_bigram(served)
    service = await deploy(gql, modelId=model_id, name="chat", protocol="OPENAI", command=serve_command("--token-delay", "0.05"))
    assert service["protocol"] == "OPENAI" and service["endpoint"] == f"/services/{service['id']}/v1"
    await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    client = client_for(served, service)
    reported: list[Any] = []

    models = await client.models.list()
    assert [model.id for model in models.data] == ["bigram"]
    assert (await client.models.retrieve("bigram")).owned_by == "aicn-tests"

    chat = await client.chat.completions.create(model="bigram", messages=[{"role": "user", "content": "what does the gateway do"}])
    assert chat.choices[0].message.content == "gateway meters it." and chat.choices[0].finish_reason == "stop"
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (5, 4)
    reported.append(chat.usage)

    # streamed: chunks arrive as the server sends them (it waits 0.05 s per token), not all at the end
    arrivals: list[float] = []
    pieces: list[str] = []
    stream = await client.chat.completions.create(
        model="bigram",
        messages=[{"role": "user", "content": "a replica"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed_usage = None
    async for chunk in stream:
        arrivals.append(time.monotonic())
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            streamed_usage = chunk.usage
    assert "".join(pieces).strip() == "serves the gateway meters it."
    assert streamed_usage is not None and (streamed_usage.prompt_tokens, streamed_usage.completion_tokens) == (2, 6)
    assert arrivals[-1] - arrivals[1] >= 0.1, "the chunks came all at once: the stream was buffered"
    reported.append(streamed_usage)

    completion = await client.completions.create(model="bigram", prompt="the bill", max_tokens=3)
    assert completion.choices[0].text == "names the gateway" and completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    reported.append(completion.usage)

    embedded = await client.embeddings.create(model="bigram", input=["the service", "every token is counted"])
    assert [len(item.embedding) for item in embedded.data] == [32, 32]
    assert abs(sum(value * value for value in embedded.data[0].embedding) - 1.0) < 1e-9
    assert embedded.usage.prompt_tokens == 6
    reported.append(embedded.usage)

    # a request the model server refuses (4xx) is passed through as is, OpenAI-shaped, and reports no usage
    with pytest.raises(openai.NotFoundError) as refused:
        await client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_found"

    prompt = sum(usage.prompt_tokens for usage in reported)
    completion_tokens = sum(getattr(usage, "completion_tokens", 0) or 0 for usage in reported)

    async def counted() -> dict[str, Any] | None:
        node = await tokens_of(served, service["id"])
        return node if node["requestsTotal"] == "7" else None

    node = await eventually(counted, "the requests and tokens flushed", timeout=10)
    assert (node["promptTokensTotal"], node["completionTokensTotal"]) == (str(prompt), str(completion_tokens))
    assert node["tokensTotal"] == str(prompt + completion_tokens)
    assert Decimal(node["pricePerMillionTokens"]["amount"]) == PRICE and node["pricePerMillionTokens"]["currency"] == "CNY"
    assert await token_lines(served) == []  # billed every hour, and when the service ends

    assert (await gql.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
    await wait_for_service(gql, service["id"], {"STOPPED"})

    async def billed() -> list[dict[str, Any]] | None:
        return await token_lines(served) or None

    [line] = await eventually(billed, "the service's TOKENS line", timeout=10)
    total = prompt + completion_tokens
    assert f"chat (service {service['id']}): {total} tokens" in line["description"], line
    assert Decimal(line["amount"]["amount"]) == (Decimal(total) * PRICE / 1_000_000).quantize(Decimal("0.000001"))
    assert line["tokens"] == str(total) and line["service"] == {"id": service["id"], "name": "chat"}
    exported = await gql.http.get(line["csvUrl"])
    [row] = [row for row in csv.DictReader(io.StringIO(exported.text)) if row["ResourceId"] == service["id"]]
    assert (row["ChargeCategory"], row["ConsumedQuantity"], row["ConsumedUnit"]) == ("Usage", str(total), "Tokens")
    assert Decimal(row["BilledCost"]) == Decimal(line["amount"]["amount"])
    await served.runtime.service_controller.tick_once()
    await served.runtime.service_controller.tick_once()
    assert len(await token_lines(served)) == 1  # once: later rounds add nothing
    assert (await tokens_of(served, service["id"]))["tokensTotal"] == str(total)


async def test_openai_faults_protocols_and_tenants(served: Gateway, tmp_path: Path) -> None:
    gql = served.client
    model_dir = tmp_path / "bigram"
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SERVER), "train", str(model_dir))
    assert await proc.wait() == 0
    model_id = await register_model(gql, name="bigram", uri=model_dir.as_uri())
    ok = await deploy(gql, modelId=model_id, name="ok", protocol="OPENAI", command=serve_command("--token-delay", "0.1"))
    failing = await deploy(gql, modelId=model_id, name="fails", protocol="OPENAI", command=serve_command("--mode", "error"))
    hanging = await deploy(
        gql, modelId=model_id, name="hangs", protocol="OPENAI", command=serve_command("--mode", "hang"), deadlineSeconds=1
    )
    plain = await deploy(gql, modelId=model_id, name="plain", command=serve_command())  # INVOKE
    for service in (ok, failing, hanging, plain):
        await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    chat = {"model": "bigram", "messages": [{"role": "user", "content": "the model"}]}

    def error_of(response: httpx.Response) -> dict[str, Any]:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}, body
        return dict(body["error"])

    backend = await gql.http.post(f"{failing['endpoint']}/chat/completions", json=chat)
    assert backend.status_code == 502 and error_of(backend)["code"] == "BACKEND_ERROR" and "500" in error_of(backend)["message"]
    assert "Traceback" not in backend.text
    with pytest.raises(openai.InternalServerError) as raised:
        await client_for(served, failing).chat.completions.create(model="bigram", messages=chat["messages"])
    assert raised.value.status_code == 502 and raised.value.code == "BACKEND_ERROR"

    started = time.monotonic()
    timed_out = await gql.http.post(f"{hanging['endpoint']}/chat/completions", json=chat)
    assert timed_out.status_code == 504 and error_of(timed_out)["code"] == "SERVICE_TIMEOUT"
    assert time.monotonic() - started < 5

    too_large = await gql.http.post(f"{ok['endpoint']}/embeddings", json={"input": "x" * 20_000})
    assert too_large.status_code == 413 and error_of(too_large)["code"] == "PAYLOAD_TOO_LARGE"

    # a client that goes away in the middle of a stream: the replica is released and the request counted
    pool = served.runtime.service_controller.pool(_key(ok["id"]))
    streamed = {**chat, "stream": True, "max_tokens": 50}
    async with gql.http.stream("POST", f"{ok['endpoint']}/chat/completions", json=streamed) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
        assert pool.in_flight == 1
    await eventually(lambda: pool.in_flight == 0 and all(r.in_flight == 0 for r in pool.ready.values()), "the stream released")

    # the built-in ONNX runner speaks INVOKE only
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").write_bytes(b"not read at deploy")
    onnx_model = await register_model(gql, name="onnx", uri=onnx_dir.as_uri())
    assert await deploy_errors(gql, modelId=onnx_model, protocol="OPENAI") == ["MODEL_NOT_SERVABLE"]

    # each protocol on its own route, refused with a code on the other
    wrong = await gql.http.post(f"/services/{ok['id']}/invoke", json={"x": 1})
    assert wrong.status_code == 409 and wrong.json()["errors"][0]["extensions"]["code"] == "WRONG_PROTOCOL"
    invoked = (await gql.execute(INVOKE, {"id": ok["id"], "input": {"x": 1}}))["invokeService"]
    assert [error["code"] for error in invoked["userErrors"]] == ["WRONG_PROTOCOL"]
    other = await gql.http.post(f"/services/{plain['id']}/v1/chat/completions", json=chat)
    assert other.status_code == 409 and error_of(other)["code"] == "WRONG_PROTOCOL"
    assert f"/services/{plain['id']}/invoke" in error_of(other)["message"]

    # tenants: another account's service answers exactly like a missing one; no token, no answer
    _, secret, stranger = await new_account(served, "stranger")
    theirs = await stranger.http.post(f"{ok['endpoint']}/chat/completions", json=chat)
    nobody = await stranger.http.post("/services/SW5mZXJlbmNlU2VydmljZTo5OTk5/v1/chat/completions", json=chat)
    assert theirs.status_code == nobody.status_code == 404 and theirs.json() == nobody.json()
    assert error_of(theirs) == {"message": "no such service", "type": "not_found_error", "code": "SERVICE_NOT_FOUND"}
    with pytest.raises(openai.NotFoundError):
        await client_for(served, ok, secret).models.list()
    async with httpx.AsyncClient(base_url=served.url) as anonymous:
        refused = await anonymous.get(f"{ok['endpoint']}/models")
    assert refused.status_code == 401 and error_of(refused)["code"] == "UNAUTHENTICATED"
    _, _, reader = await new_account(served, "reader", scopes=["READ"])
    assert (await reader.http.get(f"{ok['endpoint']}/models")).status_code == 403  # the scope is checked before any lookup
    mine = served.connect(await read_only_token(served))
    forbidden = await mine.http.get(f"{ok['endpoint']}/models")
    assert forbidden.status_code == 403 and error_of(forbidden)["code"] == "FORBIDDEN"

    # the gateway's token never reaches the model server (it refuses any request with credentials)
    answered = await gql.http.get(f"{ok['endpoint']}/models")
    assert answered.status_code == 200 and answered.json()["data"][0]["id"] == "bigram"

    # the README's curl and OpenAI client examples, as written, against this service
    curl, snippet = readme_examples(served, ok["id"])
    environment = {**os.environ, "AICN_TOKEN": str(gql.token)}
    ran = await asyncio.create_subprocess_exec("sh", "-c", curl, env=environment, stdout=PIPE)
    out, _ = await ran.communicate()
    assert ran.returncode == 0 and json.loads(out)["choices"][0]["message"]["content"] == "gateway meters it.", out
    ran = await asyncio.create_subprocess_exec(sys.executable, "-c", snippet, env=environment, stdout=PIPE, stderr=PIPE)
    out, err = await ran.communicate()
    assert ran.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["['bigram']", "serves the gateway meters it.", "8 tokens", "32 dimensions"], out

    for service in (ok, failing, hanging, plain):
        await gql.execute(STOP, {"id": service["id"]})
    await wait_for_service(gql, ok["id"], {"STOPPED"})
    stopped = await gql.http.post(f"{ok['endpoint']}/chat/completions", json=chat)
    assert stopped.status_code == 503 and error_of(stopped)["code"] == "SERVICE_NOT_READY"
    assert json.loads(stopped.text)["error"]["type"] == "server_error"


README = Path(__file__).resolve().parent.parent / "README.md"
README_SERVICE = "SW5mZXJlbmNlU2VydmljZToy"


def readme_examples(gateway: Gateway, service_id: str) -> tuple[str, str]:
    """The README's OPENAI curl and Python examples, pointed at this gateway and service."""
    text = README.read_text().split("### OpenAI-compatible services", 1)[1]
    curl = next(block for block in re.findall(r"```sh\n(.*?)```", text, re.S) if "/v1/chat/completions" in block)
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "from openai import OpenAI" in block)

    def pointed(block: str) -> str:
        return block.replace("http://127.0.0.1:8000", gateway.url).replace(README_SERVICE, service_id)

    return pointed(curl), pointed(snippet)


CREATE_TOKEN = """mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret userErrors { code message } } }"""


async def read_only_token(gateway: Gateway) -> str:
    """A READ-only token of the default account (the one that owns the services here)."""
    viewer = (await gateway.client.execute("{ viewer { id } }"))["viewer"]
    issued = await gateway.admin.execute(CREATE_TOKEN, {"input": {"accountId": viewer["id"], "name": "read-only", "scopes": ["READ"]}})
    assert issued["createApiToken"]["userErrors"] == [], issued
    return str(issued["createApiToken"]["secret"])
