"""Replicas benchmark: how long after the leader is SIGKILLed another replica reconciles again.

Run: python bench/replicas.py [--rounds 3]      (needs the PostgreSQL on 127.0.0.1:5432 db test
and the Redis on 127.0.0.1:6379; about a minute)

Two `aicn serve` replicas over one PostgreSQL schema and one Redis share a LOCAL center. A job
submitted on the second prints a progress line every 0.1 s. Figures, per round:

- baseline: the largest gap between two of the job's progress events recorded while the leader
  lives (the reconciler's own rhythm), measured in the same run;
- after the kill: from the SIGKILL to the next progress event recorded (by the other replica);
  with the default lease (6 s, heartbeat 2 s; the bound is lease + heartbeat, under 10 s) and with
  the same-machine shortcut (a dead holder's pid on this machine: its leases are taken at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

POSTGRES_URL = os.environ.get("AICN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/0"
TOKEN = "aicn_bench-replicas-" + "x" * 24
CENTER_LEASE = "center:local"


def job_python() -> str:
    """An interpreter LOCAL jobs can run (they run as a user of their own when the gateway is root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        target = Path(candidate).resolve()
        if target.is_file() and target.stat().st_mode & 0o001 and all(folder.stat().st_mode & 0o001 for folder in target.parents):
            return candidate
    raise SystemExit("no Python that any user can run")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Replica:
    """One `aicn serve` process of the set: the same database, Redis and data_dir as the others."""

    def __init__(self, folder: Path, schema: str, index: int, extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory = folder / f"replica-{index}"
        directory.mkdir()
        self.config = directory / "aicn.toml"
        self.config.write_text(
            f'bus_url = "{REDIS_URL}"\ndata_dir = "{folder / "data"}"\ndatabase_url = "{POSTGRES_URL}"\n'
            f'database_schema = "{schema}"\nhost = "127.0.0.1"\nport = {self.port}\nlog_level = "warning"\n'
            '[[centers]]\nname = "local"\nkind = "LOCAL"\nregion = "bench"\npoll_interval_seconds = 0.05\n'
            '[[centers.devices]]\naccelerator = "cpu-core"\ncount = 2\nprice_per_unit_hour = "1.00"\n'
            "[limits]\nbucket_size = 1000000\nrestore_rate = 1000000\n"  # the benchmark polls; it is not what is measured
            f'[replicas]\nname = "bench-{index}"\n{extra}'
        )
        self.log = directory / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10, headers={"authorization": f"Bearer {TOKEN}"})

    async def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
        environment.update(AICN_CONFIG=str(self.config), PYTHONPATH=str(ROOT), AICN_ADMIN_TOKEN=TOKEN)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "aicn.cli", "serve"], env=environment, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"a replica exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise SystemExit("a replica did not become ready")

    async def leases(self) -> list[str]:
        return list((await self.http.get("/readyz")).json()["leases"])

    async def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = (await self.http.post("/graphql", json={"query": query, "variables": variables})).json()
        if "errors" in body:
            raise SystemExit(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 15)
        await self.http.aclose()


PROGRESS = (
    "import json, time\n"
    "for step in range(1, 100000):\n"
    '    print("AICN_PROGRESS " + json.dumps({"step": step}), flush=True)\n'
    "    time.sleep(0.1)\n"
)
SUBMIT = "mutation S($input: SubmitJobInput!) { submitJob(input: $input) { job { id } userErrors { message } } }"
STATE = "query J($id: ID!) { node(id: $id) { ... on Job { state } } }"
EVENTS = "query E($id: ID!, $after: Int) { node(id: $id) { ... on Job { events(first: 100, after: $after) { edges { node { seq } } } } } }"
CANCEL = 'mutation C($id: ID!) { cancelJob(input: {jobId: $id, clientMutationId: "b"}) { job { state } } }'
MODES = {
    "lease expiry (6 s / 2 s)": "reclaim_dead_local_holders = false\n",
    "same-machine shortcut": "reclaim_dead_local_holders = true\n",
}


async def last_seq(replica: Replica, job_id: str, after: int) -> int:
    while True:
        page = (await replica.execute(EVENTS, {"id": job_id, "after": after}))["node"]["events"]["edges"]
        if not page:
            return after
        after = page[-1]["node"]["seq"]


async def one_round(extra: str) -> tuple[float, float]:
    """(baseline largest gap, seconds from the kill to the next recorded event)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    replicas: list[Replica] = []
    try:
        with tempfile.TemporaryDirectory(prefix="aicn-bench-replicas-") as folder:
            replicas = [Replica(Path(folder), schema, index, extra) for index in range(2)]
            for replica in replicas:
                await replica.start()
            holding = [CENTER_LEASE in await replica.leases() for replica in replicas]
            leader = replicas[holding.index(True)]
            other = next(replica for replica in replicas if replica is not leader)
            job = {"name": "bench", "command": [job_python(), "-c", PROGRESS], "request": {"maxDurationMinutes": 5, "devices": 1}}
            job_id = (await other.execute(SUBMIT, {"input": job}))["submitJob"]["job"]["id"]
            while (state := (await other.execute(STATE, {"id": job_id}))["node"]["state"]) != "RUNNING":
                if state in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                    raise SystemExit(f"the benchmark's job ended {state} before it ran")
                await asyncio.sleep(0.05)
            seq, seen_at = await last_seq(other, job_id, 0), time.monotonic()
            gaps: list[float] = []
            while len(gaps) < 20:
                now_seq = await last_seq(other, job_id, seq)
                if now_seq > seq:
                    now = time.monotonic()
                    gaps.append(now - seen_at)
                    seq, seen_at = now_seq, now
                await asyncio.sleep(0.01)
            killed_at = time.monotonic()
            leader.kill()
            while await last_seq(other, job_id, seq) == seq:
                await asyncio.sleep(0.01)
            after_kill = time.monotonic() - killed_at
            await other.execute(CANCEL, {"id": job_id})
            for replica in replicas:
                await replica.stop()
        return max(gaps), after_kill
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.kill()
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    print(f"replicas: 2 gateways, {rounds} round(s) per mode; time from the leader's SIGKILL to the next reconciled event")
    for mode, extra in MODES.items():
        results = [await one_round(extra) for _ in range(rounds)]
        baseline = statistics.median(gap for gap, _ in results)
        killed = [after for _, after in results]
        print(
            f"  {mode:28s} after the kill: median {statistics.median(killed):.2f} s, max {max(killed):.2f} s; "
            f"baseline (largest gap while the leader lives) {baseline:.2f} s; ratio {statistics.median(killed) / baseline:.1f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
