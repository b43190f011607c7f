"""Requests and tokens are counted before their answers go out: a gateway process SIGKILLed right
after its last answer shows, once started again, exactly the requests it answered and the tokens
they reported, and bills those tokens once."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DatabaseChoice
from tests.processes import folder_jobs_can_read, python_with_packages
from tests.served_gateway import ServedGateway, write_config
from tests.service_helpers import SERVER_SCRIPT, STOP, deploy, register_model, wait_for_service
from tests.test_services_openai import BILLS, SERVER, TOKENS
from tests.waiting import eventually

INVOKES = 7
CHATS = 4


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    services = f'\n[services]\npython = "{python_with_packages()}"\nprice_per_million_tokens = "2.50"\n'
    config.write_text(config.read_text() + services)
    gateway = ServedGateway(config)
    try:
        yield gateway
    finally:
        gateway.kill()
        await gateway.client.close()


async def chat(http: httpx.AsyncClient, endpoint: str, stream: bool) -> tuple[int, int]:
    """One chat completion (streamed or whole): the (prompt, completion) tokens its answer reported."""
    body: dict[str, Any] = {"model": "bigram", "messages": [{"role": "user", "content": "the model"}], "max_tokens": 5}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    answer = await http.post(endpoint + "/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    if not stream:
        usage = answer.json()["usage"]
    else:
        events = [line[5:].strip() for line in answer.text.splitlines() if line.startswith("data:")]
        assert events[-1] == "[DONE]", events
        usage = json.loads(events[-2])["usage"]
    return int(usage["prompt_tokens"]), int(usage["completion_tokens"])


@pytest.mark.both_databases
async def test_a_gateway_killed_right_after_answering_has_counted_every_request_and_token_once(
    served: ServedGateway, tmp_path: Path
) -> None:
    await served.start()
    with folder_jobs_can_read() as folder:
        script = folder / "server.py"
        script.write_text(SERVER_SCRIPT)
        openai_server = folder / "openai_server.py"
        shutil.copy(SERVER, openai_server)
        subprocess.run([python_with_packages(), str(openai_server), "train", str(folder / "bigram")], check=True, capture_output=True)
        gql = served.client
        echo_model = await register_model(gql, name="echo", uri=tmp_path.as_uri())
        bigram_model = await register_model(gql, name="bigram", uri=(folder / "bigram").as_uri())
        echo = await deploy(gql, modelId=echo_model, name="echo", command=[python_with_packages(), str(script), "ok", "{port}"])
        command = [python_with_packages(), str(openai_server), "serve", "--port", "{port}", "--model-dir", "{model_dir}"]
        chats = await deploy(gql, modelId=bigram_model, name="chat", protocol="OPENAI", command=command)
        for service in (echo, chats):
            await wait_for_service(gql, service["id"], {"READY"}, ready=1)

        headers = {"authorization": f"Bearer {served.token}"}
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as http:
            for n in range(INVOKES):
                answer = await http.post(echo["endpoint"], json={"n": n})
                assert answer.status_code == 200 and answer.json()["echo"] == {"n": n}, answer.text
            reported = [await chat(http, chats["endpoint"], stream=n % 2 == 1) for n in range(CHATS)]
        served.kill()  # right after the last answer: no controller round, no shutdown
        prompt, completion = sum(p for p, _ in reported), sum(c for _, c in reported)
        assert prompt and completion

        await served.start()
        gql = served.client
        assert (await gql.execute(TOKENS, {"id": echo["id"]}))["node"]["requestsTotal"] == str(INVOKES)
        counted = (await gql.execute(TOKENS, {"id": chats["id"]}))["node"]
        assert (counted["requestsTotal"], counted["promptTokensTotal"], counted["completionTokensTotal"]) == (
            str(CHATS),
            str(prompt),
            str(completion),
        )

        for service in (echo, chats):
            assert (await gql.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
        for service in (echo, chats):
            await wait_for_service(gql, service["id"], {"STOPPED"})

        async def token_lines() -> list[dict[str, Any]] | None:
            bills = (await gql.execute(BILLS))["bills"]["edges"]
            lines = [line["node"] for bill in bills for line in bill["node"]["lines"]["edges"]]
            return [line for line in lines if line["kind"] == "TOKENS"] or None

        [line] = await eventually(token_lines, "the chat service's TOKENS line", timeout=10)
        assert line["tokens"] == str(prompt + completion) and line["service"]["id"] == chats["id"], line
        # stopped, with many controller rounds since: still counted once
        assert (await gql.execute(TOKENS, {"id": echo["id"]}))["node"]["requestsTotal"] == str(INVOKES)
        assert (await gql.execute(TOKENS, {"id": chats["id"]}))["node"]["tokensTotal"] == str(prompt + completion)
