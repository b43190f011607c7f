"""A real webhook receiver process (tests/webhook_receiver.py) and the webhook operations tests send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from aicn.watch_settings import WebhookSettings
from tests.client import GraphQLClient
from tests.served_gateway import ROOT, free_port
from tests.waiting import eventually

#: what tests allow: a receiver on loopback, over plain http, retried quickly
LOOPBACK_WEBHOOKS = WebhookSettings(
    allowed_networks=["127.0.0.0/8"],
    allow_http_on_loopback=True,
    retry_base_seconds=0.2,
    retry_max_seconds=1.0,
    timeout_seconds=2.0,
    # no safety-net round within a test: every delivery and retry goes out because the deliverer
    # is told of it or knows when it falls due
    poll_interval_seconds=3600.0,
)

CREATE = """
mutation Create($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    endpoint { id url eventKinds description }
    secret
    userErrors { field message code }
  }
}
"""

DELIVERIES = """
query Deliveries($id: ID!) {
  node(id: $id) {
    ... on WebhookEndpoint {
      deliveries(first: 50) {
        totalCount
        edges { node { deliveryId eventKind state attemptCount payload attempts { number statusCode error } } }
      }
    }
  }
}
"""


class WebhookReceiver:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "secrets.json").write_text("{}")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = (self.folder / "receiver.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.webhook_receiver", str(self.port), str(self.folder)], env=environment, stdout=log, stderr=log
        )

        async def answers() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1) as http:
                    await http.get(self.url("/"))
                return True
            except httpx.HTTPError:
                return False

        await eventually(answers, "the webhook receiver listens", timeout=15, interval=0.05)

    def trust(self, path: str, secret: str) -> None:
        """Tell the receiver the secret of the endpoint at ``path``."""
        secrets = json.loads((self.folder / "secrets.json").read_text())
        secrets[path] = secret
        (self.folder / "secrets.json").write_text(json.dumps(secrets))

    def received(self) -> list[dict[str, Any]]:
        log = self.folder / "received.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


async def create_endpoint(client: GraphQLClient, url: str, kinds: list[str], **extra: Any) -> dict[str, Any]:
    return dict((await client.execute(CREATE, {"input": {"url": url, "eventKinds": kinds, **extra}}))["createWebhookEndpoint"])


async def deliveries(client: GraphQLClient, endpoint_id: str) -> list[dict[str, Any]]:
    data = await client.execute(DELIVERIES, {"id": endpoint_id})
    return [edge["node"] for edge in data["node"]["deliveries"]["edges"]]
