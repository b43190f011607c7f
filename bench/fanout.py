"""Fan-out benchmark: how fast one answer over many centers arrives through HTTP.

Run: python bench/fanout.py            (prints figures; takes about a minute)

The gateway runs in a child process (one uvicorn worker, SQLite) with fault-injecting
connectors; this process is the client, on loopback only. Figures:

1. 50 centers answering after 50 ms: gateway time / slowest center, p50 and p95.
2. The same with one center hanging (deadline 200 ms): time vs deadline + 20 ms, and
   that the other 49 centers' data arrived.
3. A 10-center computeUnits query: requests per second, and its latency against calling
   the 10 connectors directly in-process (a ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "aicn_bench-" + "x" * 24
QUERY = "{ computeUnits(first: 100) { totalCount edges { node { center { name } devicesTotal standardUnitsAvailable } } } }"


def serve(centers: int, latency: float, hang: int, deadline: float, port: int, data_dir: str) -> None:
    import uvicorn

    from aicn.runtime import Runtime
    from aicn.settings import CenterConfig, DeviceConfig, Settings
    from connectors.fault import FaultyConnector
    from graph.http.app import create_app

    names = [f"c{n:02d}" for n in range(centers)]
    configs = [
        CenterConfig(
            name=name,
            devices=[DeviceConfig(accelerator="nvidia-a100-80gb", count=8)],
            deadline_seconds=deadline,
            probe_interval_seconds=3600,
            failure_threshold=1_000_000,
        )
        for name in names
    ]
    connectors = {name: FaultyConnector(name, {"nvidia-a100-80gb": 8}, latency=latency) for name in names}
    for name in names[:hang]:
        connectors[name].set("hang")
    from pydantic import SecretStr

    from aicn.security_settings import LimitSettings

    # the benchmark is the only client: a bucket that never runs dry, so requests per second are the gateway's own
    limits = LimitSettings(bucket_size=10**9, restore_rate=1e9)
    settings = Settings(data_dir=Path(data_dir), centers=configs, admin_token=SecretStr(TOKEN), limits=limits)
    from aicn.cli import tune_gc

    tune_gc()  # as `aicn serve` does
    uvicorn.run(create_app(Runtime(settings, connectors)), host="127.0.0.1", port=port, log_level="warning")


class Gateway:
    def __init__(self, centers: int, latency: float, hang: int = 0, deadline: float = 2.0) -> None:
        self.port = _free_port()
        self.data_dir = tempfile.mkdtemp(prefix="aicn-bench-")
        self.args = [str(centers), str(latency), str(hang), str(deadline), str(self.port), self.data_dir]

    async def __aenter__(self) -> httpx.AsyncClient:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", *self.args], cwd=ROOT)
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30, headers={"authorization": f"Bearer {TOKEN}"})
        for _ in range(300):
            try:
                if (await self.client.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        return self.client

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()
        self.process.terminate()
        self.process.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed(client: httpx.AsyncClient, runs: int) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    body: dict[str, Any] = {}
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": QUERY})
        times.append((time.perf_counter() - started) * 1000)
        body = response.json()
    return times, body


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main() -> None:
    from connectors.fault import FaultyConnector

    print("aicn fan-out benchmark (loopback, one uvicorn worker, fault-injecting connectors)")

    async with Gateway(centers=50, latency=0.05) as client:
        await timed(client, 5)  # warm up
        times, body = await timed(client, 50)
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        total = body["data"]["computeUnits"]["totalCount"]
        print(f"\n1. 50 centers x 50 ms, {total} compute units per answer, 50 runs")
        print(f"   gateway p50 {p50:.1f} ms, p95 {p95:.1f} ms; slowest center 50 ms")
        print(f"   ratio gateway/slowest: p50 {p50 / 50:.2f}, p95 {p95 / 50:.2f} (target <= 1.2)")
        sequential = 50 * 50
        print(f"   one after another would take {sequential} ms: {sequential / p50:.0f}x slower than the gateway")

    async with Gateway(centers=50, latency=0.05, hang=1, deadline=0.2) as client:
        await timed(client, 3)
        times, body = await timed(client, 20)
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        data = body["data"]["computeUnits"]
        errors: list[dict[str, Any]] = body.get("errors", [])
        print("\n2. 50 centers x 50 ms, one hanging (deadline 200 ms), 20 runs")
        print(f"   gateway p50 {p50:.1f} ms, p95 {p95:.1f} ms; deadline + 20 ms = 220 ms")
        print(
            f"   answer carried {data['totalCount']} of 50 centers' units and {len(errors)} error(s): {[e['extensions']['code'] for e in errors]}"
        )

    async with Gateway(centers=10, latency=0.0) as client:
        await timed(client, 20)
        times, _ = await timed(client, 200)
        gateway_p50 = percentile(times, 0.5)
        connectors = [FaultyConnector(f"d{n}", {"nvidia-a100-80gb": 8}) for n in range(10)]
        direct: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            await asyncio.gather(*(connector.capacity() for connector in connectors))
            direct.append((time.perf_counter() - started) * 1000)
        direct_p50 = percentile(direct, 0.5)
        count = 0
        deadline = time.perf_counter() + 5

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await client.post("/graphql", json={"query": QUERY})
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        rps = count / (time.perf_counter() - started)
        print("\n3. 10-center computeUnits query, one uvicorn worker")
        print(f"   {rps:.0f} requests/s with 8 concurrent clients (client on the same 2 cores)")
        print(f"   latency p50 through HTTP {gateway_p50:.2f} ms vs the 10 connectors called directly {direct_p50:.3f} ms")
        print(
            f"   overhead ratio (gateway / direct): {gateway_p50 / max(direct_p50, 1e-6):.0f}x; absolute overhead {gateway_p50 - direct_p50:.2f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=6)
    arguments = parser.parse_args()
    if arguments.serve:
        centers, latency, hang, deadline, port, data_dir = arguments.serve
        os.environ.setdefault("AICN_LOG_LEVEL", "warning")
        serve(int(centers), float(latency), int(hang), float(deadline), int(port), data_dir)
    else:
        asyncio.run(main())
