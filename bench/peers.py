"""PEER benchmark: what a hop through a peer gateway costs.

Run: python bench/peers.py            (prints figures; takes about a minute)

Three gateways on loopback, each its own process and SQLite database: the leaf C has a real
LOCAL center and a fault-injecting center answering after 50 ms (the slowest leaf center);
B has C as a PEER center, A has B. This process is the client. Figures:

1. computeUnits and offers at C, through one peer (B) and through a chain of two (A): p50 of
   each, the extra per hop, and one plain round trip to a gateway (target: extra per hop at most
   one round trip + 10 ms).
2. Events of a delegated job: from the job's progress line to a subscriber at the origin,
   against the same at the gateway that runs it, as a ratio in one run (one hop and two).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "aicn_bench-peers-" + "x" * 24
RUNS = 30
LEAF_LATENCY = 0.05
UNITS = "{ computeUnits(first: 100) { edges { node { center { name } devicesTotal pricePerUnitHour { amount } } } } }"
OFFERS = "{ offers(request: {cpus: 1, maxDurationMinutes: 5}) { center { name } feasible pricePerHour { amount } } }"
PING = "{ gateway { id } }"
#: LOCAL jobs run as a user of their own: an interpreter any user can run (the system's), else this one
JOB_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
STEPS = 15
PROGRESS = (
    "import json, time\n"
    "time.sleep(1.5)\n"
    f"for step in range(1, {STEPS + 1}):\n"
    "    print('AICN_PROGRESS ' + json.dumps({'step': step, 'message': repr(time.time())}), flush=True)\n"
    "    time.sleep(0.15)\n"
)


def serve(config_path: str) -> None:
    from profiling import serve_app  # bench/profiling.py, beside this file

    from aicn.cli import tune_gc
    from aicn.runtime import Runtime
    from aicn.settings import Settings
    from connectors.fault import FaultyConnector
    from graph.http.app import create_app

    document = json.loads(Path(config_path).read_text())
    slow = document.pop("slow_center", None)
    settings = Settings(**document)
    connectors = {slow: FaultyConnector(slow, {"nvidia-a100-80gb": 8}, latency=LEAF_LATENCY)} if slow else {}
    tune_gc()
    serve_app(create_app(Runtime(settings, connectors)), settings.port, None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    def __init__(self, name: str, centers: list[dict[str, Any]], slow_center: str | None = None) -> None:
        self.name = name
        self.port = _free_port()
        self.data_dir = tempfile.mkdtemp(prefix=f"aicn-bench-peer-{name}-")
        document: dict[str, Any] = {
            "data_dir": self.data_dir,
            "port": self.port,
            "admin_token": TOKEN,
            "log_level": "warning",
            "limits": {"bucket_size": 10**9, "restore_rate": 1e9},
            "centers": centers,
        }
        if slow_center:
            document["slow_center"] = slow_center
        self.config = Path(self.data_dir) / "bench.json"
        self.config.write_text(json.dumps(document))
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30, headers={"authorization": f"Bearer {TOKEN}"})

    async def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(self.config)], cwd=self.data_dir, env=environment)
        for _ in range(600):
            try:
                if (await self.client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"gateway {self.name} did not start")

    async def stop(self) -> None:
        await self.client.aclose()
        self.process.terminate()
        self.process.wait(15)

    async def run(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = (await self.client.post("/graphql", json={"query": query, "variables": variables or {}})).json()
        if "errors" in body:
            raise RuntimeError(f"{self.name}: {body['errors']}")
        return dict(body["data"])

    async def peer_token(self, account: str) -> str:
        made = await self.run("mutation($n: String!) { createAccount(input: {name: $n}) { account { id } } }", {"n": account})
        account_id = made["createAccount"]["account"]["id"]
        token = await self.run(
            'mutation($a: ID!) { createApiToken(input: {accountId: $a, name: "peer", scopes: [READ, SUBMIT]}) { secret } }',
            {"a": account_id},
        )
        return str(token["createApiToken"]["secret"])


def local(price: str, cores: int = 2) -> dict[str, Any]:
    return {
        "name": "local",
        "kind": "LOCAL",
        "poll_interval_seconds": 0.05,
        "devices": [{"accelerator": "cpu-core", "count": cores, "price_per_unit_hour": price}],
    }


def peer(name: str, gateway: Gateway, token: str) -> dict[str, Any]:
    return {"name": name, "kind": "PEER", "poll_interval_seconds": 0.05, "peer": {"url": f"{gateway.url}/graphql", "token": token}}


async def p50(gateway: Gateway, query: str, runs: int = RUNS) -> float:
    for _ in range(3):
        await gateway.run(query)
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        await gateway.run(query)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def arrivals(gateway: Gateway, job_id: str, into: dict[int, float], ready: asyncio.Event) -> None:
    """Each progress report's delay, from the line's own timestamp to its arrival here (ms)."""
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    query = "subscription($id: ID!) { jobEvents(jobId: $id) { kind state progress { step message } } }"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {TOKEN}"}}))
        await socket.recv()
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": job_id}}}))
        ready.set()
        async for raw in socket:
            message = json.loads(raw)
            if message.get("type") == "ping":
                await socket.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") != "next":
                return
            event = message["payload"]["data"]["jobEvents"]
            if event["kind"] == "PROGRESS":
                into[event["progress"]["step"]] = (time.time() - float(event["progress"]["message"])) * 1000


async def event_ratio(origin: Gateway, path: list[Gateway]) -> tuple[float, float]:
    """(median delay at the origin, at the gateway that runs the job) for one job."""
    submit = """mutation($c: [String!]!) { submitJob(input: {name: "bench", command: $c, request: {cpus: 1, maxDurationMinutes: 2}}) {
      job { id remoteId } userErrors { code message } } }"""
    job = (await origin.run(submit, {"c": [JOB_PYTHON, "-c", PROGRESS]}))["submitJob"]["job"]
    ids = [job["id"]]
    remote = job["remoteId"]
    for hop in path:
        ids.append(remote)
        found = await hop.run("query($id: ID!) { node(id: $id) { ... on Job { remoteId } } }", {"id": remote})
        remote = found["node"]["remoteId"]
    at_origin: dict[int, float] = {}
    at_leaf: dict[int, float] = {}
    ready = [asyncio.Event(), asyncio.Event()]
    watchers = [
        asyncio.create_task(arrivals(origin, ids[0], at_origin, ready[0])),
        asyncio.create_task(arrivals(path[-1], ids[-1], at_leaf, ready[1])),
    ]
    await asyncio.wait_for(asyncio.gather(*watchers), 60)
    return statistics.median(at_origin.values()), statistics.median(at_leaf.values())


async def main() -> None:
    print("aicn PEER benchmark (loopback; three gateways, each its own process and SQLite database)")
    c = Gateway(
        "c", [local("1.00"), {"name": "slow", "kind": "LOCAL", "devices": [{"accelerator": "nvidia-a100-80gb", "count": 8}]}], "slow"
    )
    await c.start()
    b = Gateway("b", [local("100.00", 1), peer("peer-c", c, await c.peer_token("peer-b"))])
    await b.start()
    a = Gateway("a", [local("200.00", 1), peer("peer-b", b, await b.peer_token("peer-a"))])
    await a.start()
    try:
        rtt = await p50(c, PING)
        print(
            f"\n1. one round trip to a gateway ({PING}): p50 {rtt:.1f} ms; the slowest leaf center answers after {LEAF_LATENCY * 1000:.0f} ms"
        )
        for label, query in (("computeUnits", UNITS), ("offers", OFFERS)):
            leaf, one, two = await p50(c, query), await p50(b, query), await p50(a, query)
            target = rtt + 10
            print(f"   {label}: at the leaf {leaf:.1f} ms, through one peer {one:.1f} ms, through a chain of two {two:.1f} ms")
            print(
                f"   {label}: extra per hop {one - leaf:.1f} ms and {(two - leaf) / 2:.1f} ms "
                f"(target <= one round trip + 10 ms = {target:.1f} ms)"
            )
        print("\n2. a delegated job's progress reports, line to subscriber (median of", STEPS, "reports)")
        for origin, path, label in ((b, [c], "one hop (B -> C)"), (a, [b, c], "two hops (A -> B -> C)")):
            at_origin, at_leaf = await event_ratio(origin, path)
            print(
                f"   {label}: at the origin {at_origin:.1f} ms, at the gateway running it {at_leaf:.1f} ms, ratio {at_origin / at_leaf:.2f}"
            )
    finally:
        for gateway in (a, b, c):
            await gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve)
    else:
        asyncio.run(main())
