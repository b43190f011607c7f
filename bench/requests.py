"""Hot paths against a bare strawberry app on the same stack, measured side by side in one run.

Run: python bench/requests.py  [--seconds S] [--clients C] [--postgres URL]

Servers, each in its own process with one uvicorn worker: the aicn gateway on SQLite, the aicn
gateway on PostgreSQL, and a bare strawberry app (starlette + uvicorn + strawberry + sqlalchemy,
no auth, no gate) answering the same shapes: ``{ viewer { name } }``, ``{ centers { name } }`` and
a ``submitJob`` that inserts one row. The load generator runs in C processes of its own, one
keep-alive HTTP/1.1 connection each (``http.client``, so that it costs the 2 cores little).

Printed, with the ratio to bare strawberry:
1. requests/s of ``{ viewer { name } }`` and ``{ centers { name } }`` with a token (aim: >= 0.8x bare),
   and the server's CPU time per request (user + system, from /proc: on a machine shared with other
   work, requests/s swing with the load while CPU per request barely does);
2. ``submitJob`` jobs/s on SQLite and PostgreSQL (aim: >= 200), handed to a center behind a
   fault-injecting connector with no faults (connectors/fault.py) that queues them for ever: the
   gateway's whole submit path, with no process started per job;
3. a trivial job (``print(1)``) from submit to SUCCEEDED on an idle LOCAL center, p50 (aim: < 100 ms).

``--only submit`` (or ``reads``, ``succeeded``) runs one part. AICN_BENCH_PROFILE=file.html: the aicn
gateways run under pyinstrument and write their profiles there (``file.sqlite.html``, ``file.postgres.html``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import strawberry
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "aicn_bench-requests-token-0123456789"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
VIEWER = "{ viewer { name } }"
CENTERS = "{ centers { edges { node { name } } } }"
SUBMIT = """mutation($input: SubmitJobInput!) { submitJob(input: $input) { job { id } userErrors { code message } } }"""
BARE_SUBMIT = """mutation($name: String!) { submitJob(name: $name) { id } }"""
FAKE_CORES = 10**7
EVENTS = "query($id: ID!) { node(id: $id) { ... on Job { events(first: 50) { edges { node { at } } } } } }"
STATE = "query($id: ID!) { node(id: $id) { ... on Job { state failureReason } } }"


# ---------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_aicn(port: int, data_dir: str, database_url: str | None, schema: str | None) -> None:
    from profiling import serve_app  # bench/profiling.py, beside this file
    from pydantic import SecretStr

    from aicn.cli import tune_gc
    from aicn.runtime import Runtime
    from aicn.security_settings import LimitSettings
    from aicn.settings import CenterConfig, DeviceConfig, Settings
    from connectors.fault import FaultyConnector
    from graph.http.app import create_app

    settings = Settings(
        data_dir=Path(data_dir),
        database_url=database_url,
        database_schema=schema,
        centers=[
            CenterConfig(name="queueing", devices=[DeviceConfig(accelerator="cpu-core", count=FAKE_CORES)], probe_interval_seconds=3600),
            CenterConfig(name="idle", devices=[DeviceConfig(accelerator="cpu-core", count=2)]),
        ],
        admin_token=SecretStr(TOKEN),
        limits=LimitSettings(bucket_size=10**9, restore_rate=1e9),
    )
    tune_gc()
    runtime = Runtime(settings, {"queueing": FaultyConnector("queueing", {"cpu-core": FAKE_CORES})})
    profile = os.environ.get("AICN_BENCH_PROFILE")
    target = Path(profile) if profile else None
    if target is not None:  # one profile per gateway
        target = target.with_name(f"{target.stem}.{'postgres' if database_url else 'sqlite'}{target.suffix}")
    serve_app(create_app(runtime), port, target)


@strawberry.type
class BareNamed:
    name: str


@strawberry.type
class BareJob:
    id: strawberry.ID


@strawberry.type
class BareEdge:
    node: BareNamed


@strawberry.type
class BareConnection:
    edges: list[BareEdge]


@strawberry.type
class BareQuery:
    @strawberry.field
    def viewer(self) -> BareNamed:
        return BareNamed(name="bench")

    @strawberry.field
    def centers(self) -> BareConnection:
        return BareConnection(edges=[BareEdge(node=BareNamed(name="queueing")), BareEdge(node=BareNamed(name="idle"))])


BARE: dict[str, Any] = {}


@strawberry.type
class BareMutation:
    @strawberry.mutation
    async def submit_job(self, name: str) -> BareJob:
        async with BARE["engine"].begin() as connection:
            result = await connection.execute(insert(BARE["rows"]).values(name=name))
        return BareJob(id=strawberry.ID(str(result.inserted_primary_key[0])))


def serve_bare(port: int, database_url: str, schema: str | None) -> None:
    """strawberry on starlette and uvicorn, the same shapes, no auth: the baseline."""
    import uvicorn
    from sqlalchemy import Column, Integer, MetaData, String, Table
    from sqlalchemy.ext.asyncio import create_async_engine
    from starlette.applications import Starlette
    from starlette.routing import Route
    from strawberry.asgi import GraphQL

    from aicn.cli import tune_gc

    metadata = MetaData(schema=schema)
    BARE["rows"] = Table("bare_jobs", metadata, Column("id", Integer, primary_key=True), Column("name", String(100)))
    BARE["engine"] = engine = create_async_engine(database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            if schema:
                await connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await connection.run_sync(metadata.create_all)
        yield
        await engine.dispose()

    app = Starlette(routes=[Route("/graphql", GraphQL(strawberry.Schema(BareQuery, BareMutation)))], lifespan=lifespan)
    tune_gc()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------------- load generator


def _client(port: int, body: bytes, headers: dict[str, str], start: float, seconds: float, out: Any) -> None:
    """One keep-alive connection posting ``body`` from ``start`` for ``seconds``: (answers, latencies)."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies: list[float] = []
    while time.time() < start:
        time.sleep(0.001)
    stop = start + seconds
    while (began := time.perf_counter()) and time.time() < stop:
        connection.request("POST", "/graphql", body, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200 or b'"errors"' in answer or b'"code"' in answer:
            raise SystemExit(f"bad answer: {response.status} {answer[:300]!r}")
        latencies.append(time.perf_counter() - began)
    out.put(latencies)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int, query: str, variables: dict[str, Any], clients: int, seconds: float, token: str | None, pid: int
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, server CPU ms per request) of ``clients`` processes for ``seconds``."""
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    body = json.dumps({"query": query, "variables": variables}).encode()
    out: Any = multiprocessing.Queue()
    start = time.time() + 0.5
    workers = [multiprocessing.Process(target=_client, args=(port, body, headers, start, seconds, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    while time.time() < start:
        time.sleep(0.001)
    used = cpu_seconds(pid)
    latencies = [latency for _ in workers for latency in out.get(timeout=seconds + 60)]
    used = cpu_seconds(pid) - used
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit("a load generator failed")
    return len(latencies) / seconds, statistics.median(latencies) * 1000, used * 1000 / max(1, len(latencies))


# ---------------------------------------------------------------------- the run


async def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"a server exited with {process.returncode}")
            try:
                if (await http.post(url + "/graphql", json={"query": "{ __typename }"})).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"{url} did not start")


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = (await client.post("/graphql", json={"query": query, "variables": variables or {}})).json()
    assert "errors" not in body, body
    return dict(body["data"])


#: LOCAL jobs run as a user of their own, who may not reach this venv's interpreter
JOB_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def job_input(center_id: str, script: str) -> dict[str, Any]:
    return {
        "name": "bench",
        "centerId": center_id,
        "command": [JOB_PYTHON, "-c", script],
        "request": {"devices": 1, "maxDurationMinutes": 5},
    }


async def center_ids(port: int) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        edges = (await gql(client, "{ centers { edges { node { id name } } } }"))["centers"]["edges"]
        return {edge["node"]["name"]: edge["node"]["id"] for edge in edges}


async def submit_to_succeeded(port: int, center_id: str, runs: int) -> tuple[float, float, float]:
    """(p50, p95) ms from sending submitJob to seeing the job SUCCEEDED, one job at a time, and the
    p50 from its first event (PENDING) to its last (SUCCEEDED) as the gateway logged them."""
    spans: list[float] = []
    logged: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        for _ in range(runs):
            started = time.perf_counter()
            job = (await gql(client, SUBMIT, {"input": job_input(center_id, "print(1)")}))["submitJob"]["job"]
            while (node := (await gql(client, STATE, {"id": job["id"]}))["node"])["state"] != "SUCCEEDED":
                if node["state"] in ("FAILED", "CANCELLED", "LOST"):
                    raise SystemExit(f"the trivial job ended {node}")
                await asyncio.sleep(0.005)
            spans.append((time.perf_counter() - started) * 1000)
            events = (await gql(client, EVENTS, {"id": job["id"]}))["node"]["events"]["edges"]
            stamps = [datetime.fromisoformat(edge["node"]["at"]) for edge in events]
            logged.append((stamps[-1] - stamps[0]).total_seconds() * 1000)
    spans.sort()
    return statistics.median(spans), spans[int(len(spans) * 0.95) - 1], statistics.median(logged)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT)


async def main(seconds: float, clients: int, postgres: str, runs: int, rounds: int, only: str | None = None) -> None:
    work = Path(tempfile.mkdtemp(prefix="aicn-bench-requests-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    ports = {name: free_port() for name in ("sqlite", "postgres", "bare-sqlite", "bare-postgres")}
    processes = {
        "sqlite": spawn("--serve-aicn", str(ports["sqlite"]), str(work / "sqlite"), "", ""),
        "postgres": spawn("--serve-aicn", str(ports["postgres"]), str(work / "postgres"), postgres, schema),
        "bare-sqlite": spawn("--serve-bare", str(ports["bare-sqlite"]), f"sqlite+aiosqlite:///{work / 'bare.db'}", ""),
        "bare-postgres": spawn("--serve-bare", str(ports["bare-postgres"]), postgres, schema + "_bare"),
    }
    try:
        for name, process in processes.items():
            await wait_up(f"http://127.0.0.1:{ports[name]}", process)
        centers = {name: await center_ids(ports[name]) for name in ("sqlite", "postgres")}
        print(
            f"aicn hot paths against bare strawberry (loopback, one uvicorn worker each, {clients} keep-alive clients in their own processes, best of {rounds} turns of {seconds:g} s)"
        )

        def row(label: str, ours: tuple[float, float, float], bare: tuple[float, float, float], aim: str) -> None:
            print(
                f"  {label:34} aicn {ours[0]:7.0f}/s p50 {ours[1]:5.1f} ms cpu {ours[2]:5.2f} ms/req"
                f" | bare {bare[0]:7.0f}/s p50 {bare[1]:5.1f} ms cpu {bare[2]:5.2f} ms/req"
                f" | {ours[0] / bare[0]:.2f}x, cpu {bare[2] / ours[2]:.2f}x  ({aim})"
            )

        def pair(ours: tuple[str, str, dict[str, Any]], bare: tuple[str, str, dict[str, Any]]) -> tuple[tuple[float, float, float], ...]:
            """aicn and bare taking turns ``rounds`` times, the best round of each: a machine shared
            with other work slows both alike within a round, and either at random across rounds
            (CPU per request: the least of the rounds)."""
            runs: list[list[tuple[float, float, float]]] = [[], []]
            for _ in range(rounds):
                for side, (server, query, variables) in enumerate((ours, bare)):
                    token = TOKEN if side == 0 else None
                    runs[side].append(load(ports[server], query, variables, clients, seconds, token, processes[server].pid))
            return tuple((*max(side)[:2], min(run[2] for run in side)) for side in runs)

        for label, query in (("{ viewer { name } }", VIEWER), ("centers (2 edges)", CENTERS)) if only in (None, "reads") else ():
            ours, bare = pair(("sqlite", query, {}), ("bare-sqlite", query, {}))
            row(label, ours, bare, "aim >= 0.8x")
        for dialect in ("sqlite", "postgres") if only in (None, "submit") else ():
            submit = {"input": job_input(centers[dialect]["queueing"], "print(1)")}
            ours, bare = pair((dialect, SUBMIT, submit), (f"bare-{dialect}", BARE_SUBMIT, {"name": "bench"}))
            row(f"submitJob on {dialect} (jobs/s)", ours, bare, f"aim >= 200/s: {'met' if ours[0] >= 200 else 'not met'}")
        if only not in (None, "succeeded"):
            return
        p50, p95, logged = await submit_to_succeeded(ports["sqlite"], centers["sqlite"]["idle"], runs)
        print(
            f"  trivial job submit -> SUCCEEDED      p50 {p50:.0f} ms, p95 {p95:.0f} ms over {runs} jobs, seen by a client polling every 5 ms;"
            f" {logged:.0f} ms p50 from its PENDING to its SUCCEEDED event (aim < 100 ms: {'met' if p50 < 100 else 'not met'})"
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(120 if os.environ.get("AICN_BENCH_PROFILE") else 30)  # a profile takes a while to write
        await drop_schemas(postgres, [schema, schema + "_bare"])


async def drop_schemas(url: str, schemas: list[str]) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for schema in schemas:
                await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-aicn":
        _, _, port, data_dir, url, schema = sys.argv
        serve_aicn(int(port), data_dir, url or None, schema or None)
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-bare":
        _, _, port, url, schema = sys.argv
        serve_bare(int(port), url, schema or None)
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--seconds", type=float, default=5.0, help="each load run's length (default 5)")
        parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients, one process each (default 8)")
        parser.add_argument("--postgres", default=POSTGRES, help="the PostgreSQL database (a schema of its own is made and dropped)")
        parser.add_argument("--runs", type=int, default=30, help="trivial jobs timed from submit to SUCCEEDED (default 30)")
        parser.add_argument("--rounds", type=int, default=3, help="turns aicn and bare take at each load, the best kept (default 3)")
        parser.add_argument("--only", choices=("reads", "submit", "succeeded"), help="run one part of the benchmark")
        arguments = parser.parse_args()
        asyncio.run(main(arguments.seconds, arguments.clients, arguments.postgres, arguments.runs, arguments.rounds, arguments.only))
