"""Live subscriptions at scale, against a bare strawberry app on the same stack in the same run.

Run: python bench/subscriptions.py                 (the issue's scale; several minutes)
     python bench/subscriptions.py --scale 0.25    (a quick run: a quarter of every subscriber count)
     python bench/subscriptions.py --only a,b      (some scenarios; d needs PostgreSQL and Redis on loopback)
     python bench/subscriptions.py --only e        (`jobUpdates` dashboards, not in the default run)

Servers, each one uvicorn worker in a process of its own: the gateway (``aicn serve``, a LOCAL
center, SQLite; PostgreSQL + Redis for d) and a bare strawberry app (starlette + uvicorn +
strawberry, no auth, no database) with the same ``jobEvents(jobId, after)`` subscription shape,
fed from the same kind of source: a real process printing ``AICN_PROGRESS`` lines, which the bare
app reads from its pipe and hands to each subscriber's own generator (strawberry executes each
event once per subscriber). Jobs on both sides are the same script: each progress line carries
the time the job printed it (``message``), and the load generator, in processes of its own (each
runs many graphql-transport-ws clients with ``websockets``), measures from that time to delivery.

Scenarios (defaults as in the issue):

a. 2,000 subscribers on one worker, 100 jobs x 20 subscribers, each job 2 progress lines a second:
   p95 from print to delivery (aim < 250 ms), lost and repeated events (aim 0 / 0).
b. 2,000 subscribers on one job printing 10 lines a second, gateway and bare strawberry:
   deliveries per second (aim >= 2x bare) and p95 (aim: below bare's).
c. memory per open subscription (the server's RSS growth while b's subscribers open, / N) against bare.
e. scenario b's variant for `jobUpdates(snapshot: true)` dashboards: 2,000 subscribers of every job
   while 2 jobs print 10 lines a second; both sides send a job's progress at most once a second
   (the bare app with the gateway's own throttle, one stream per subscriber): deliveries per second
   and p95 from the print of the progress a row reports to its delivery, against bare.
d. two replicas over PostgreSQL + Redis: jobs submitted on the one that reconciles the LOCAL center,
   1,000 subscribers (50 jobs x 20) on the other, against the same load on that one replica alone
   in the same run (aim: p95 within 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import strawberry  # noqa: E402

POSTGRES_URL = os.environ.get("AICN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/0"
TOKEN = "aicn_bench-subscriptions-" + "x" * 24
CENTER_LEASE = "center:local"
EVENTS = "subscription E($jobId: ID!, $after: Int) { jobEvents(jobId: $jobId, after: $after) { seq kind progress { step message } } }"
UPDATES = "subscription U { jobUpdates(snapshot: true) { id state progress { step message } } }"
SUBMIT = "mutation S($input: SubmitJobInput!) { submitJob(input: $input) { job { id } userErrors { code message } } }"
STATE = "query J($id: ID!) { node(id: $id) { ... on Job { state failureReason } } }"
#: the job, on both sides: waits for its go file (and gives up once the run's folder is gone), then prints ``count`` progress lines at ``rate``
#: a second, starting ``phase`` of a period late (jobs of one run do not all print at once)
JOB = (
    "import json, os, sys, time\n"
    "go, count, rate, phase = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])\n"
    "while not os.path.exists(go):\n"
    "    if not os.path.isdir(os.path.dirname(go)):\n"  # the run ended (failed) before saying go: no orphan
    "        sys.exit(1)\n"
    "    time.sleep(0.02)\n"
    "start = time.time() + phase / rate\n"
    "for step in range(1, count + 1):\n"
    "    time.sleep(max(0.0, start + (step - 1) / rate - time.time()))\n"
    "    print('AICN_PROGRESS ' + json.dumps({'step': step, 'message': repr(time.time())}), flush=True)\n"
)
FD_LIMIT = 20_000


def raise_fd_limit() -> None:
    """Every subscriber is a socket on each side; children (servers, clients) inherit the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


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


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no RSS for {pid}")


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---------------------------------------------------------------------- the bare strawberry app


@strawberry.enum
class BareEventKind(Enum):
    STATE = "STATE"
    PROGRESS = "PROGRESS"


@strawberry.type(name="JobProgress")
class BareProgress:
    step: int | None
    message: str | None


@strawberry.type(name="JobEvent")
class BareEvent:
    seq: int
    kind: BareEventKind
    progress: BareProgress | None


@strawberry.type(name="Job")
class BareJobRow:
    id: strawberry.ID
    state: str
    progress: BareProgress | None


#: each bare `jobUpdates` subscriber's queue of (job id, row): every job's every change
UPDATE_QUEUES: set[asyncio.Queue[tuple[int, BareJobRow]]] = set()


class BareJob:
    """A real process whose progress lines the bare app reads from its pipe and hands to each subscriber's queue."""

    def __init__(self, command: list[str], job_id: int = 0) -> None:
        self.command = command
        self.job_id = job_id
        self.row = BareJobRow(id=strawberry.ID(str(job_id)), state="RUNNING", progress=None)
        self.events: list[BareEvent] = [BareEvent(seq=1, kind=BareEventKind.STATE, progress=None)]
        self.queues: set[asyncio.Queue[BareEvent | None]] = set()
        self.ended = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        process = await asyncio.create_subprocess_exec(*self.command, stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        async for raw in process.stdout:
            text = raw.decode().strip()
            if text.startswith("AICN_PROGRESS "):
                document = json.loads(text[len("AICN_PROGRESS ") :])
                progress = BareProgress(step=document.get("step"), message=document.get("message"))
                self._publish(BareEvent(seq=len(self.events) + 1, kind=BareEventKind.PROGRESS, progress=progress))
        await process.wait()
        self._publish(BareEvent(seq=len(self.events) + 1, kind=BareEventKind.STATE, progress=None))
        self.ended = True
        for queue in self.queues:
            queue.put_nowait(None)

    def _publish(self, event: BareEvent) -> None:
        self.events.append(event)
        state = "RUNNING" if event.kind == BareEventKind.PROGRESS else "SUCCEEDED"
        self.row = BareJobRow(id=self.row.id, state=state, progress=event.progress or self.row.progress)
        for updates in UPDATE_QUEUES:
            updates.put_nowait((self.job_id, self.row))
        for queue in self.queues:
            queue.put_nowait(event)


BARE_JOBS: dict[str, BareJob] = {}


@strawberry.type
class BareQuery:
    @strawberry.field
    def ready(self) -> bool:
        return True


@strawberry.type
class BareMutation:
    @strawberry.mutation
    def start_job(self, command: list[str]) -> strawberry.ID:
        job_id = str(len(BARE_JOBS) + 1)
        BARE_JOBS[job_id] = BareJob(command, int(job_id))
        return strawberry.ID(job_id)


@strawberry.type
class BareSubscription:
    @strawberry.subscription
    async def job_events(self, job_id: strawberry.ID, after: int | None = None) -> AsyncGenerator[BareEvent, None]:
        job = BARE_JOBS[str(job_id)]
        queue: asyncio.Queue[BareEvent | None] = asyncio.Queue()
        job.queues.add(queue)
        try:
            for event in list(job.events[(after or 0) :]):
                yield event
            if job.ended:
                return
            while (live := await queue.get()) is not None:
                yield live
        finally:
            job.queues.discard(queue)

    @strawberry.subscription
    async def job_updates(self, snapshot: bool = False) -> AsyncGenerator[BareJobRow, None]:
        """Every job's changes, progress at most once a second per job (the gateway's throttle), one stream per subscriber."""
        from resolvers.jobs.streams import PROGRESS_INTERVAL_SECONDS, ProgressThrottle

        queue: asyncio.Queue[tuple[int, BareJobRow]] = asyncio.Queue()
        UPDATE_QUEUES.add(queue)
        throttle = ProgressThrottle(PROGRESS_INTERVAL_SECONDS)
        latest: dict[int, BareJobRow] = {}
        try:
            if snapshot:
                for job in list(BARE_JOBS.values()):
                    yield job.row
            while True:
                item = None
                try:
                    async with asyncio.timeout(throttle.wait()):
                        item = await queue.get()
                except TimeoutError:
                    pass
                due = throttle.due()
                if item is not None:
                    job_id, row = item
                    latest[job_id] = row
                    if row.state == "RUNNING" and not throttle.may_send(job_id):
                        throttle.defer(job_id)
                    else:
                        due.add(job_id)
                for job_id in sorted(due):
                    throttle.sent(job_id)
                    yield latest[job_id]
        finally:
            UPDATE_QUEUES.discard(queue)


def serve_bare(port: int) -> None:
    """strawberry on starlette and uvicorn, the same subscription shape, no auth, no database: the baseline."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute
    from strawberry.asgi import GraphQL

    from aicn.cli import tune_gc

    graphql = GraphQL(strawberry.Schema(BareQuery, BareMutation, BareSubscription))
    app = Starlette(routes=[Route("/graphql", graphql), WebSocketRoute("/graphql", graphql)])
    tune_gc()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------------- servers


class Server:
    """One server process and the HTTP client that drives it."""

    def __init__(self, label: str, port: int, log: Path) -> None:
        self.label = label
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30, headers={"authorization": f"Bearer {TOKEN}"})

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self, command: list[str], environment: dict[str, str]) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=environment, stdout=log, stderr=log, cwd=self.log.parent)

    async def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"{self.label} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get(path)).status_code in {200, 400}:
                    return
            await asyncio.sleep(0.1)
        raise SystemExit(f"{self.label} did not become ready")

    async def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = (await self.http.post("/graphql", json={"query": query, "variables": variables})).json()
        if body.get("errors"):
            raise SystemExit(f"{self.label}: GraphQL errors: {body['errors']}")
        return dict(body["data"])

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(10)
        await self.http.aclose()


def aicn_config(folder: Path, port: int, devices: int, database: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aicn.toml"
    path.write_text(
        f'{database}host = "127.0.0.1"\nport = {port}\nlog_level = "warning"\n'
        '[[centers]]\nname = "local"\nkind = "LOCAL"\nregion = "bench"\n'
        f'[[centers.devices]]\naccelerator = "cpu-core"\ncount = {devices}\nprice_per_unit_hour = "0.01"\n'
        # the benchmark opens thousands of operations with one token: the rate limit is not what is measured
        "[limits]\nbucket_size = 100000000\nrestore_rate = 100000000\nmax_cost = 10000\n"
        f'[replicas]\nname = "{name}"\n'
    )
    return path


async def start_aicn(folder: Path, label: str, devices: int, database: str) -> Server:
    port = free_port()
    config = aicn_config(folder, port, devices, database, label)
    server = Server(label, port, folder / "gateway.log")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
    environment.update(AICN_CONFIG=str(config), PYTHONPATH=str(ROOT), AICN_ADMIN_TOKEN=TOKEN)
    server.launch([sys.executable, "-m", "aicn.cli", "serve"], environment)
    await server.wait_ready("/readyz")
    return server


async def start_bare(folder: Path) -> Server:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    server = Server("bare strawberry", port, folder / "bare.log")
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    server.launch([sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)], environment)
    await server.wait_ready("/graphql?query=%7Bready%7D")
    return server


@dataclass
class Job:
    job_id: str
    go: Path
    count: int


def job_command(go: Path, count: int, rate: float, phase: float) -> list[str]:
    return [job_python(), "-c", JOB, str(go), str(count), str(rate), str(phase)]


async def submit_aicn(server: Server, folder: Path, index: int, count: int, rate: float, phase: float) -> Job:
    go = folder / f"go-{index}"
    job = {
        "name": f"bench-{index}",
        "command": job_command(go, count, rate, phase),
        "request": {"maxDurationMinutes": 30, "devices": 1},
    }
    answer = (await server.execute(SUBMIT, {"input": job}))["submitJob"]
    if answer["userErrors"]:
        raise SystemExit(f"submitJob refused: {answer['userErrors']}")
    return Job(answer["job"]["id"], go, count)


async def wait_running(server: Server, jobs: Sequence[Job]) -> None:
    for job in jobs:
        while (node := (await server.execute(STATE, {"id": job.job_id}))["node"])["state"] != "RUNNING":
            if node["state"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                raise SystemExit(f"a benchmark job ended {node['state']} before it ran: {node['failureReason']}")
            await asyncio.sleep(0.05)


async def start_bare_job(server: Server, folder: Path, index: int, count: int, rate: float) -> Job:
    go = folder / f"go-bare-{index}"
    answer = await server.execute("mutation M($c: [String!]!) { startJob(command: $c) }", {"c": job_command(go, count, rate, 0.0)})
    return Job(answer["startJob"], go, count)


# ---------------------------------------------------------------------- load generator


@dataclass
class Tally:
    """What the subscribers of one load process saw."""

    latencies: list[float] = field(default_factory=list)
    deliveries: int = 0
    lost: int = 0
    repeated: int = 0
    failures: list[str] = field(default_factory=list)
    first_print: float = math.inf
    last_arrival: float = 0.0

    def merge(self, other: Tally) -> None:
        self.latencies.extend(other.latencies)
        self.deliveries += other.deliveries
        self.lost += other.lost
        self.repeated += other.repeated
        self.failures.extend(other.failures[:5])
        self.first_print = min(self.first_print, other.first_print)
        self.last_arrival = max(self.last_arrival, other.last_arrival)


async def _one_subscriber(ws_url: str, job_id: str, count: int, opened: asyncio.Event, tally: Tally, timeout: float) -> None:
    import websockets
    from websockets.typing import Subprotocol

    steps: set[int] = set()
    seqs: set[int] = set()
    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(
                ws_url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                compression=None,
                max_size=None,
                # on a loaded machine a client's own keepalive and handshake deadlines would close
                # connections the server still serves: the run's deadline bounds it instead
                ping_interval=None,
                open_timeout=None,
            ) as socket_:
                await socket_.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {TOKEN}"}}))
                if json.loads(await socket_.recv())["type"] != "connection_ack":
                    raise RuntimeError("no connection_ack")
                payload = {"query": EVENTS, "variables": {"jobId": job_id, "after": None}}
                await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                async for text in socket_:
                    arrived = time.time()
                    message = json.loads(text)
                    if message["type"] == "complete":
                        break
                    if message["type"] != "next" or message["payload"].get("errors"):
                        raise RuntimeError(f"unexpected message: {text[:300]!r}")
                    opened.set()  # the first frame (a replayed event): the server follows the job for us
                    event = message["payload"]["data"]["jobEvents"]
                    if event["seq"] in seqs:
                        tally.repeated += 1
                        continue
                    seqs.add(event["seq"])
                    if event["kind"] == "PROGRESS":
                        printed = float(event["progress"]["message"])
                        steps.add(event["progress"]["step"])
                        tally.latencies.append(arrived - printed)
                        tally.deliveries += 1
                        tally.first_print = min(tally.first_print, printed)
                        tally.last_arrival = max(tally.last_arrival, arrived)
    except Exception as error:  # counted, not raised: one broken client must not hide the others' figures
        tally.failures.append(f"{type(error).__name__}: {error}"[:300])
        opened.set()
    tally.lost += count - len(steps)


async def _one_dashboard(ws_url: str, job_ids: str, count: int, opened: asyncio.Event, tally: Tally, timeout: float) -> None:
    """A `jobUpdates` subscriber of every job (``job_ids``, comma-separated): until each has ended."""
    import websockets
    from websockets.typing import Subprotocol

    jobs = set(job_ids.split(","))
    reported: set[tuple[str, int]] = set()
    ended: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(
                ws_url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=None,
            ) as socket_:
                await socket_.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {TOKEN}"}}))
                if json.loads(await socket_.recv())["type"] != "connection_ack":
                    raise RuntimeError("no connection_ack")
                await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": UPDATES}}))
                async for text in socket_:
                    arrived = time.time()
                    message = json.loads(text)
                    if message["type"] != "next" or message["payload"].get("errors"):
                        raise RuntimeError(f"unexpected message: {text[:300]!r}")
                    opened.set()  # the snapshot's first row: the server follows the jobs for us
                    row = message["payload"]["data"]["jobUpdates"]
                    progress = row["progress"]
                    if row["state"] == "RUNNING" and progress is not None:
                        key = (row["id"], progress["step"])
                        if key in reported:
                            tally.repeated += 1
                            continue
                        reported.add(key)
                        printed = float(progress["message"])
                        tally.latencies.append(arrived - printed)
                        tally.deliveries += 1
                        tally.first_print = min(tally.first_print, printed)
                        tally.last_arrival = max(tally.last_arrival, arrived)
                    if row["state"] == "SUCCEEDED":
                        ended.add(row["id"])
                        if progress is None or progress["step"] != count:
                            tally.lost += 1  # its final row must carry its last report
                        if ended >= jobs:
                            break
    except Exception as error:
        tally.failures.append(f"{type(error).__name__}: {error}"[:300])
        opened.set()
    tally.lost += len(jobs - ended)


async def _subscribers(ws_url: str, plan: list[tuple[str, int]], ready: Any, timeout: float) -> Tally:
    tally = Tally()
    opened = [asyncio.Event() for _ in plan]
    tasks = []
    for index, ((job_id, count), event) in enumerate(zip(plan, opened, strict=True)):
        follow = _one_dashboard if "," in job_id or job_id.startswith("*") else _one_subscriber
        tasks.append(asyncio.create_task(follow(ws_url, job_id.lstrip("*"), count, event, tally, timeout)))
        if index % 50 == 49:
            await asyncio.sleep(0.05)  # the server's accept queue: connect in bursts, not all at once
    for event in opened:
        await event.wait()
    ready.put(len(plan))
    await asyncio.gather(*tasks)
    return tally


def load_process(ws_url: str, plan: list[tuple[str, int]], ready: Any, out: Any, timeout: float) -> None:
    raise_fd_limit()
    try:
        import uvloop

        tally = uvloop.run(_subscribers(ws_url, plan, ready, timeout))
    except ImportError:
        tally = asyncio.run(_subscribers(ws_url, plan, ready, timeout))
    out.put(dataclasses.asdict(tally))  # plain data: this module is __mp_main__ here, not in the parent


@dataclass
class Outcome:
    label: str
    subscribers: int
    tally: Tally
    rss_per_subscription: float
    expected: int

    @property
    def p50(self) -> float:
        return percentile(self.tally.latencies, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.tally.latencies, 0.95)

    @property
    def rate(self) -> float:
        span = self.tally.last_arrival - self.tally.first_print
        return self.tally.deliveries / span if span > 0 else math.nan


async def run_load(
    server: Server, jobs: Sequence[Job], per_job: int, processes: int, timeout: float, label: str, dashboards: bool = False
) -> Outcome:
    """``per_job`` subscribers on each job (``dashboards``: ``per_job`` `jobUpdates` subscribers of all
    the jobs), spread over ``processes``; opens them all, then lets the jobs go."""
    if dashboards:
        plan = [("*" + ",".join(job.job_id for job in jobs), jobs[0].count) for _ in range(per_job)]
    else:
        plan = [(job.job_id, job.count) for _ in range(per_job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    before = rss_bytes(server.pid)
    workers = [
        context.Process(target=load_process, args=(server.ws_url, plan[index::processes], ready, out, timeout))
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        await asyncio.to_thread(ready.get, True, timeout)
    await asyncio.sleep(1.0)  # let the server settle (its last replays written, garbage collected) before its RSS is read
    after = rss_bytes(server.pid)
    for job in jobs:
        job.go.touch()
    tally = Tally()
    for _ in workers:
        tally.merge(Tally(**await asyncio.to_thread(out.get, True, timeout + 60)))
    for worker in workers:
        await asyncio.to_thread(worker.join, 30)
    expected = sum(job.count for job in jobs) * per_job
    if dashboards:  # a report at most once a second per job
        expected = sum(math.ceil(job.count / 10.0) for job in jobs) * per_job
    return Outcome(label, len(plan), tally, (after - before) / len(plan), expected)


# ---------------------------------------------------------------------- scenarios


def go_folder(base: Path) -> Path:
    folder = base / f"go-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    folder.chmod(0o755)  # LOCAL jobs run as users of their own: they must see the go files
    return folder


async def scenario_a(base: Path, jobs_n: int, per_job: int, rate: float, seconds: float, processes: int) -> Outcome:
    server = await start_aicn(base / "a", "aicn-a", jobs_n + 2, f'data_dir = "{base / "a" / "data"}"\n')
    try:
        folder = go_folder(base)
        count = max(2, int(rate * seconds))
        jobs = [await submit_aicn(server, folder, index, count, rate, index / jobs_n) for index in range(jobs_n)]
        await wait_running(server, jobs)
        return await run_load(server, jobs, per_job, processes, seconds + 240, "gateway")
    finally:
        await server.stop()


async def scenario_b(base: Path, subscribers: int, rate: float, seconds: float, processes: int) -> tuple[Outcome, Outcome]:
    count = max(2, int(rate * seconds))
    bare = await start_bare(base / "bare")
    try:
        folder = go_folder(base)
        bare_outcome = await run_load(
            bare, [await start_bare_job(bare, folder, 0, count, rate)], subscribers, processes, seconds + 240, "bare"
        )
    finally:
        await bare.stop()
    server = await start_aicn(base / "b", "aicn-b", 4, f'data_dir = "{base / "b" / "data"}"\n')
    try:
        folder = go_folder(base)
        jobs = [await submit_aicn(server, folder, 0, count, rate, 0.0)]
        await wait_running(server, jobs)
        outcome = await run_load(server, jobs, subscribers, processes, seconds + 240, "gateway")
    finally:
        await server.stop()
    return outcome, bare_outcome


async def scenario_e(base: Path, subscribers: int, jobs_n: int, rate: float, seconds: float, processes: int) -> tuple[Outcome, Outcome]:
    """`jobUpdates` dashboards of ``jobs_n`` jobs: (gateway, bare strawberry), one after the other."""
    count = max(2, int(rate * seconds))
    bare = await start_bare(base / "bare-e")
    try:
        folder = go_folder(base)
        bare_jobs = [await start_bare_job(bare, folder, index, count, rate) for index in range(jobs_n)]
        bare_outcome = await run_load(bare, bare_jobs, subscribers, processes, seconds + 240, "bare", dashboards=True)
    finally:
        await bare.stop()
    server = await start_aicn(base / "e", "aicn-e", jobs_n + 2, f'data_dir = "{base / "e" / "data"}"\n')
    try:
        folder = go_folder(base)
        jobs = [await submit_aicn(server, folder, index, count, rate, index / jobs_n) for index in range(jobs_n)]
        await wait_running(server, jobs)
        outcome = await run_load(server, jobs, subscribers, processes, seconds + 240, "gateway", dashboards=True)
    finally:
        await server.stop()
    return outcome, bare_outcome


async def scenario_d(base: Path, jobs_n: int, per_job: int, rate: float, seconds: float, processes: int) -> tuple[Outcome, Outcome]:
    """(cross-replica, the same load on the one replica that reconciles)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    database = (
        f'bus_url = "{REDIS_URL}"\nbus_prefix = "{schema}:"\ndata_dir = "{base / "d-data"}"\n'
        f'database_url = "{POSTGRES_URL}"\ndatabase_schema = "{schema}"\n'
    )
    replicas: list[Server] = []
    try:
        for index in range(2):
            replicas.append(await start_aicn(base / f"d-{index}", f"aicn-d{index}", jobs_n + 2, database))
        leases = [(await replica.http.get("/readyz")).json()["leases"] for replica in replicas]
        leader = replicas[next(index for index, held in enumerate(leases) if CENTER_LEASE in held)]
        other = next(replica for replica in replicas if replica is not leader)
        count = max(2, int(rate * seconds))
        outcomes = []
        for subscribed_on, label in ((leader, "one replica"), (other, "across replicas")):
            folder = go_folder(base)
            jobs = [await submit_aicn(leader, folder, index, count, rate, index / jobs_n) for index in range(jobs_n)]
            await wait_running(leader, jobs)
            outcomes.append(await run_load(subscribed_on, jobs, per_job, processes, seconds + 240, label))
        return outcomes[1], outcomes[0]
    finally:
        for replica in replicas:
            await replica.stop()
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await engine.dispose()


# ---------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def line(outcome: Outcome) -> str:
    tally = outcome.tally
    failures = f"; {len(tally.failures)} client failures, e.g. {tally.failures[0]}" if tally.failures else ""
    return (
        f"    {outcome.label:16s} {outcome.subscribers:5d} subs  p50 {ms(outcome.p50):>8s}  p95 {ms(outcome.p95):>8s}  "
        f"{outcome.rate:8.0f} deliveries/s  delivered {tally.deliveries}/{outcome.expected}  "
        f"lost {tally.lost}  repeated {tally.repeated}  {outcome.rss_per_subscription / 1024:.1f} KiB/sub{failures}"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    only = set(args.only.split(","))

    def scaled(count: int) -> int:
        return max(1, round(count * float(args.scale)))

    print(f"subscriptions benchmark: scale {args.scale}, jobs print for {args.seconds:.0f} s, {args.processes} load processes")
    verdicts: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="aicn-bench-subs-"))
    base.chmod(0o755)
    try:
        a = None
        if "a" in only:
            jobs_n = scaled(100)
            a = await scenario_a(base, jobs_n, 20, 2.0, args.seconds, args.processes)
            print(f"a. {a.subscribers} subscribers on one worker, {jobs_n} jobs x 20, 2 progress lines/s each (SQLite):")
            print(line(a))
            ok = a.p95 < 0.25 and a.tally.lost == 0 and a.tally.repeated == 0 and not a.tally.failures
            verdicts.append(f"a. p95 {ms(a.p95)} < 250 ms, lost {a.tally.lost}, repeated {a.tally.repeated}: {verdict(ok)}")
        if "b" in only or "c" in only:
            subscribers = scaled(2000)
            b, bare = await scenario_b(base, subscribers, 10.0, args.seconds, args.processes)
            print(f"b. {subscribers} subscribers on one job, 10 progress lines/s (SQLite):")
            print(line(b))
            print(line(bare))
            speed, p95_ratio = b.rate / bare.rate, b.p95 / bare.p95
            print(f"    ratio: deliveries/s {speed:.2f}x bare, p95 {p95_ratio:.2f}x bare")
            if "b" in only:
                verdicts.append(
                    f"b. deliveries/s {speed:.2f}x bare (aim >= 2x), p95 {p95_ratio:.2f}x bare (aim < 1): {verdict(speed >= 2 and p95_ratio < 1)}"
                )
            memory = b.rss_per_subscription / bare.rss_per_subscription
            print(
                f"c. memory per open subscription: gateway {b.rss_per_subscription / 1024:.1f} KiB, "
                f"bare {bare.rss_per_subscription / 1024:.1f} KiB ({memory:.2f}x)"
            )
        if "e" in only:
            subscribers = scaled(2000)
            e, bare = await scenario_e(base, subscribers, 2, 10.0, args.seconds, args.processes)
            print(f"e. {subscribers} jobUpdates dashboards of 2 jobs printing 10 progress lines/s, progress at most 1/s per job (SQLite):")
            print(line(e))
            print(line(bare))
            speed, p95_ratio = e.rate / bare.rate, e.p95 / bare.p95
            print(f"    ratio: deliveries/s {speed:.2f}x bare, p95 {p95_ratio:.2f}x bare")
            ok = e.tally.lost == 0 and e.tally.repeated == 0 and not e.tally.failures and p95_ratio < 1
            verdicts.append(f"e. p95 {p95_ratio:.2f}x bare (aim < 1), lost {e.tally.lost}, repeated {e.tally.repeated}: {verdict(ok)}")
        if "d" in only:
            jobs_n = scaled(50)
            cross, single = await scenario_d(base, jobs_n, 20, 2.0, args.seconds, args.processes)
            print(f"d. {cross.subscribers} subscribers, {jobs_n} jobs x 20, 2 lines/s, PostgreSQL + Redis, jobs submitted on the leader:")
            print(line(single))
            print(line(cross))
            ratio = cross.p95 / single.p95
            against_a = f", {cross.p95 / a.p95:.2f}x a's" if a is not None else ""
            print(f"    ratio: p95 across replicas {ratio:.2f}x one replica's{against_a}")
            ok = ratio <= 1.5 and cross.tally.lost == 0 and cross.tally.repeated == 0
            verdicts.append(f"d. p95 across replicas {ratio:.2f}x one replica's (aim <= 1.5x), lost {cross.tally.lost}: {verdict(ok)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("aims:")
    for text in verdicts:
        print(f"  {text}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d", help="scenarios to run (c is measured during b)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every subscriber count and a's and d's job counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each job prints")
    parser.add_argument("--processes", type=int, default=4, help="load generator processes")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        raise_fd_limit()
        serve_bare(args.serve_bare)
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
