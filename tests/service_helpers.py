"""Inference services in tests: a training script (scikit-learn → ONNX), a model server with
fault modes, and the GraphQL operations the service tests share."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.client import GraphQLClient

#: trains a classifier on a separable 2-feature problem and writes model.onnx to $AICN_OUTPUT_DIR (or argv[1])
TRAIN_SCRIPT = """
import os, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx
out = sys.argv[1] if len(sys.argv) > 1 else os.environ["AICN_OUTPUT_DIR"]
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 2)).astype(np.float32)
y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
model = LogisticRegression().fit(x, y)
onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model.onnx"), "wb").write(onx.SerializeToString())
print("trained", model.score(x, y))
"""

#: a model server whose behaviour is its first argument: ok, error (500), hang, exit, slow (seconds: the third)
SERVER_SCRIPT = """
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "exit":
    print("cannot load the model: it is broken", flush=True)
    sys.exit(3)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status); self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        self.answer(200, {"ok": True})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"null")
        if mode == "error":
            self.answer(500, {"error": "Traceback (most recent call last): secret internals"})
        elif mode == "hang":
            time.sleep(60)
        else:
            if mode == "slow":
                time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.5)
            self.answer(200, {"echo": body, "replica": os.environ.get("AICN_SERVICE_REPLICA"), "pid": os.getpid()})
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""

SERVICE_FIELDS = """
id name state failureReason endpoint protocol requestsTotal
replicas { min max ready desired }
model { id name }
center { name }
"""
DEPLOY = f"""
mutation($input: DeployModelInput!) {{
  deployModel(input: $input) {{ service {{ {SERVICE_FIELDS} }} userErrors {{ code field message }} }}
}}
"""
SERVICE = f"query($id: ID!) {{ node(id: $id) {{ ... on InferenceService {{ {SERVICE_FIELDS} }} }} }}"
INVOKE = """
mutation($id: ID!, $input: JSON!) {
  invokeService(input: {serviceId: $id, input: $input}) { output latencyMs userErrors { code field message } }
}
"""
SCALE = """
mutation($id: ID!, $min: Int!, $max: Int!, $target: Float) {
  scaleService(input: {serviceId: $id, scale: {min: $min, max: $max, targetRequestsPerReplica: $target}}) {
    service { id replicas { min max desired } } userErrors { code field message }
  }
}
"""
STOP = "mutation($id: ID!) { stopService(input: {serviceId: $id}) { service { id state } userErrors { code message } } }"
EVENTS = """
subscription($id: ID!, $after: Int) { serviceEvents(serviceId: $id, after: $after) { seq kind state replicasReady message } }
"""
REGISTER_MODEL = """
mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id name } userErrors { code message } } }
"""


async def register_model(gql: GraphQLClient, **fields: Any) -> str:
    payload = (await gql.execute(REGISTER_MODEL, {"input": fields}))["registerModel"]
    assert payload["userErrors"] == [], payload
    return str(payload["model"]["id"])


async def deploy(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("request", {"maxDurationMinutes": 10, "devices": 1})
    payload = (await gql.execute(DEPLOY, {"input": fields}))["deployModel"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return dict(payload["service"])


async def deploy_errors(gql: GraphQLClient, **fields: Any) -> list[str]:
    fields.setdefault("request", {"maxDurationMinutes": 10, "devices": 1})
    payload = (await gql.execute(DEPLOY, {"input": fields}))["deployModel"]
    assert payload["service"] is None
    return [error["code"] for error in payload["userErrors"]]


async def service_state(gql: GraphQLClient, service_id: str) -> dict[str, Any]:
    return dict((await gql.execute(SERVICE, {"id": service_id}))["node"])


async def wait_for_service(gql: GraphQLClient, service_id: str, states: set[str], timeout: float = 60, **expect: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    service: dict[str, Any] = {}
    while time.monotonic() < deadline:
        service = await service_state(gql, service_id)
        if service["state"] in states and all(service["replicas"].get(key) == value for key, value in expect.items()):
            return service
        await asyncio.sleep(0.1)
    raise AssertionError(f"service {service_id} stayed {service.get('state')} {service.get('replicas')}: {service.get('failureReason')}")


async def invoke(gql: GraphQLClient, service_id: str, payload: Any) -> dict[str, Any]:
    return dict((await gql.execute(INVOKE, {"id": service_id, "input": payload}))["invokeService"])


async def collect_service_events(gql: GraphQLClient, service_id: str, after: int | None = None) -> list[dict[str, Any]]:
    return [data["serviceEvents"] async for data in gql.subscribe(EVENTS, {"id": service_id, "after": after}, timeout=60)]
