"""Inference services: the gateway's proxy overhead, throughput with 1, 2 and 4 replicas, and a cold start.

Run: python bench/services.py  [--requests N] [--clients C]

A gateway runs in a child process (one uvicorn worker, SQLite, one LOCAL center with 8 cores).
A scikit-learn classifier is exported to ONNX and served by the built-in runner. Measured, in
one run:

1. one replica, C concurrent clients: p50 latency and requests/s calling the replica directly
   (its loopback port) and through ``POST /services/{id}/invoke``; the p50 overhead and the
   throughput ratio (aim: under 2 ms and at least 80 %);
2. 1 -> 2 -> 4 replicas (``scaleService`` min = max), 2 x C clients through the gateway;
3. a cold start: scaled to zero, the time from the first request to its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "aicn_bench-services-token-0123456789"
PAYLOAD = {"inputs": [[2.0, 2.0], [-2.0, -2.0]]}


def serve(port: int, data_dir: str) -> None:
    import uvicorn
    from pydantic import SecretStr

    from aicn.cli import tune_gc
    from aicn.runtime import Runtime
    from aicn.security_settings import LimitSettings
    from aicn.settings import CenterConfig, DeviceConfig, LocalConfig, ServicesConfig, Settings
    from graph.http.app import create_app

    settings = Settings(
        data_dir=Path(data_dir),
        # the replicas run the gateway's interpreter (onnxruntime): as the gateway's user, which the isolated job user cannot run
        centers=[
            CenterConfig(
                name="local",
                devices=[DeviceConfig(accelerator="cpu-core", count=8)],
                poll_interval_seconds=0.05,
                local=LocalConfig(run_as="none"),
            )
        ],
        admin_token=SecretStr(TOKEN),
        limits=LimitSettings(bucket_size=10**9, restore_rate=1e9),
        services=ServicesConfig(tick_seconds=0.1, cool_down_seconds=2.0, health_interval_seconds=1.0),
    )
    tune_gc()
    uvicorn.run(create_app(Runtime(settings)), host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def export_model(directory: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(np.int64))
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    (directory / "model.onnx").write_bytes(onx.SerializeToString())


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = (await client.post("/graphql", json={"query": query, "variables": variables or {}})).json()
    assert "errors" not in body, body
    return dict(body["data"])


SERVICE = "query($id: ID!) { node(id: $id) { ... on InferenceService { state replicas { ready desired } replicaJobs { environment } } } }"
SCALE = "mutation($id: ID!, $n: Int!, $min: Int!) { scaleService(input: {serviceId: $id, scale: {min: $min, max: $n, targetRequestsPerReplica: 1000}}) { userErrors { code } } }"


async def wait_ready(client: httpx.AsyncClient, service_id: str, ready: int) -> dict[str, Any]:
    for _ in range(1200):
        node = (await gql(client, SERVICE, {"id": service_id}))["node"]
        if node["state"] == "READY" and node["replicas"]["ready"] == ready:
            return dict(node)
        await asyncio.sleep(0.1)
    raise SystemExit(f"the service did not reach {ready} ready replicas: {node}")


async def load(url: str, clients: int, requests: int, headers: dict[str, str]) -> tuple[float, float]:
    """(p50 ms, requests/s) of ``requests`` POSTs spread over ``clients`` concurrent connections."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as http:

        async def one_client(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                response = await http.post(url, json=PAYLOAD)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text

        await asyncio.gather(*(one_client(10) for _ in range(clients)))  # warm up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one_client(requests // clients) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return statistics.median(latencies), len(latencies) / elapsed


async def main(requests: int, clients: int) -> None:
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="aicn-bench-services-")
    model_dir = Path(data_dir) / "model"
    model_dir.mkdir()
    export_model(model_dir)
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), data_dir], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
            registered = await gql(
                client,
                'mutation($uri: String!) { registerModel(input: {name: "bench", uri: $uri}) { model { id } } }',
                {"uri": model_dir.as_uri()},
            )
            deployed = await gql(
                client,
                """mutation($m: ID!) { deployModel(input: {modelId: $m, request: {devices: 1, maxDurationMinutes: 60},
                   scale: {min: 1, max: 4, targetRequestsPerReplica: 1000}}) { service { id endpoint } userErrors { code message } } }""",
                {"m": registered["registerModel"]["model"]["id"]},
            )
            service = deployed["deployModel"]["service"]
            node = await wait_ready(client, service["id"], 1)
            replica_port = node["replicaJobs"][0]["environment"]["AICN_SERVICE_PORT"]
            print(f"aicn inference services benchmark (loopback, one uvicorn worker, {clients} clients, {requests} requests a run)")

            direct_p50, direct_rps = await load(f"http://127.0.0.1:{replica_port}/invoke", clients, requests, {})
            proxied_p50, proxied_rps = await load(base + service["endpoint"], clients, requests, auth)
            print("\n1. one replica, the built-in ONNX runner")
            print(f"   direct:  p50 {direct_p50:.2f} ms, {direct_rps:.0f} requests/s")
            print(f"   gateway: p50 {proxied_p50:.2f} ms, {proxied_rps:.0f} requests/s")
            print(f"   overhead p50 {proxied_p50 - direct_p50:.2f} ms; throughput ratio {proxied_rps / direct_rps:.0%}")

            print(f"\n2. replicas through the gateway, {2 * clients} clients")
            for replicas in (1, 2, 4):
                await gql(client, SCALE, {"id": service["id"], "n": replicas, "min": replicas})
                await wait_ready(client, service["id"], replicas)
                p50, rps = await load(base + service["endpoint"], 2 * clients, requests, auth)
                print(f"   {replicas} replica(s): p50 {p50:.2f} ms, {rps:.0f} requests/s")

            await gql(client, SCALE, {"id": service["id"], "n": 1, "min": 0})
            await wait_ready(client, service["id"], 0)
            started = time.perf_counter()
            answer = await client.post(service["endpoint"], json=PAYLOAD)
            cold = time.perf_counter() - started
            print(f"\n3. cold start from zero replicas to the first answer: {cold:.2f} s (HTTP {answer.status_code})")
            await gql(client, "mutation($id: ID!) { stopService(input: {serviceId: $id}) { userErrors { code } } }", {"id": service["id"]})
            for _ in range(200):
                if (await gql(client, SERVICE, {"id": service["id"]}))["node"]["state"] == "STOPPED":
                    break
                await asyncio.sleep(0.1)
    finally:
        process.terminate()
        process.wait(15)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--clients", type=int, default=8)
        arguments = parser.parse_args()
        asyncio.run(main(arguments.requests, arguments.clients))
