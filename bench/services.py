"""Inference services: the gateway's proxy overhead, throughput with 1, 2 and 4 replicas, and a cold start.

Run: python bench/services.py  [--requests N] [--clients C]
(AICN_BENCH_PROFILE=file.html: the gateway runs under pyinstrument and writes its profile there.)

A gateway runs in a child process (one uvicorn worker, SQLite, one LOCAL center with 8 cores).
A scikit-learn classifier is exported to ONNX and served by the built-in runner. Measured, in
one run:

1. one replica, C concurrent clients: p50 latency and requests/s calling the replica directly
   (its loopback port) and through ``POST /services/{id}/invoke``; the p50 and p95 overhead, the
   throughput ratio (aim: under 2 ms and at least 80 %), and the CPU time per request of the
   gateway, of the replica and of the load generator (all three share the machine's cores);
2. 1 -> 2 -> 4 replicas (``scaleService`` min = max), 2 x C clients through the gateway;
3. a cold start: scaled to zero, the time from the first request to its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "aicn_bench-services-token-0123456789"
PAYLOAD = {"inputs": [[2.0, 2.0], [-2.0, -2.0]]}


def serve(port: int, data_dir: str) -> None:
    from profiling import serve_app  # bench/profiling.py, beside this file
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
                local=LocalConfig(run_as="none"),
            )
        ],
        admin_token=SecretStr(TOKEN),
        limits=LimitSettings(bucket_size=10**9, restore_rate=1e9),
        services=ServicesConfig(cool_down_seconds=2.0, health_interval_seconds=1.0),
    )
    tune_gc()
    profile = os.environ.get("AICN_BENCH_PROFILE")
    serve_app(create_app(Runtime(settings)), port, Path(profile) if profile else None)


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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the replicas and their supervisors)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


class CpuMeter:
    """CPU seconds of the gateway, of its replicas (its descendants), and of this load generator."""

    def __init__(self, gateway: int) -> None:
        self.gateway = gateway

    def read(self) -> tuple[float, float, float]:
        replicas = 0.0
        for pid in descendants(self.gateway):
            try:
                replicas += cpu_seconds(pid)
            except OSError:
                pass
        return cpu_seconds(self.gateway), replicas, time.process_time()


@dataclass
class Run:
    p50: float
    p95: float
    rps: float
    #: CPU ms per request: gateway, replicas, load generator
    cpu: tuple[float, float, float]


async def load(url: str, clients: int, requests: int, headers: dict[str, str], meter: CpuMeter) -> Run:
    """Latencies, requests/s and CPU per request of ``requests`` POSTs over ``clients`` concurrent connections."""
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
        before = meter.read()
        started = time.perf_counter()
        await asyncio.gather(*(one_client(requests // clients) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        after = meter.read()
    cpu = tuple(1000 * (end - start) / len(latencies) for start, end in zip(before, after, strict=True))
    p95 = statistics.quantiles(latencies, n=20)[-1]
    return Run(statistics.median(latencies), p95, len(latencies) / elapsed, (cpu[0], cpu[1], cpu[2]))


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

            meter = CpuMeter(process.pid)
            direct = await load(f"http://127.0.0.1:{replica_port}/invoke", clients, requests, {}, meter)
            proxied = await load(base + service["endpoint"], clients, requests, auth, meter)
            print("\n1. one replica, the built-in ONNX runner (CPU ms per request: gateway / replica / load generator)")
            for label, run in (("direct: ", direct), ("gateway:", proxied)):
                gateway_cpu, replica_cpu, client_cpu = run.cpu
                print(
                    f"   {label} p50 {run.p50:.2f} ms, p95 {run.p95:.2f} ms, {run.rps:.0f} requests/s; "
                    f"CPU {gateway_cpu:.2f} / {replica_cpu:.2f} / {client_cpu:.2f} ms"
                )
            print(
                f"   overhead p50 {proxied.p50 - direct.p50:.2f} ms, p95 {proxied.p95 - direct.p95:.2f} ms; "
                f"throughput ratio {proxied.rps / direct.rps:.0%}"
            )

            print(f"\n2. replicas through the gateway, {2 * clients} clients")
            for replicas in (1, 2, 4):
                await gql(client, SCALE, {"id": service["id"], "n": replicas, "min": replicas})
                await wait_ready(client, service["id"], replicas)
                run = await load(base + service["endpoint"], 2 * clients, requests, auth, meter)
                print(f"   {replicas} replica(s): p50 {run.p50:.2f} ms, p95 {run.p95:.2f} ms, {run.rps:.0f} requests/s")

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
        process.wait(120 if os.environ.get("AICN_BENCH_PROFILE") else 15)  # a profile takes a while to write


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--clients", type=int, default=8)
        arguments = parser.parse_args()
        asyncio.run(main(arguments.requests, arguments.clients))
