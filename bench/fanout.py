"""Fan-out benchmark: how fast one answer over many centers arrives through HTTP.

Run: python bench/fanout.py [--code DIR] [--only 1|2|3]   (prints figures; takes about a minute)

The gateway runs in a child process (one uvicorn worker, SQLite) with fault-injecting
connectors; this process is the client, on loopback only. ``--code DIR`` serves the gateway of
another checkout (a worktree of the base commit, say) with this same benchmark, so old and new
code can take turns in one session. Figures:

1. 50 centers answering after 50 ms: gateway time (the client's, request sent to answer read)
   against the slowest center's answer time in the same request (from the call to its answer,
   as the center saw it), p50 and p95 of the ratio, and where the rest went in the gateway.
   A center answers from a clock thread, as a remote center's answer comes in: an I/O event that
   wakes the gateway's loop at once, not a timer of the loop (which fires up to 1 ms late and
   would be counted against the gateway). It also prints how much more CPU the same loop work
   costs on this machine right after a 50 ms wait than back to back (caches gone cold meanwhile).
2. The same with one center hanging (deadline 200 ms): time vs deadline + 20 ms, and
   that the other 49 centers' data arrived.
3. A 10-center computeUnits query: requests per second, and its latency against calling
   the 10 connectors directly in-process (a ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "aicn_bench-" + "x" * 24
QUERY = "{ computeUnits(first: 100) { totalCount edges { node { center { name } devicesTotal standardUnitsAvailable } } } }"


def serve(centers: int, latency: float, hang: int, deadline: float, port: int, data_dir: str) -> None:
    from profiling import serve_app  # bench/profiling.py, beside this file

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
    clock = CenterClock()
    remote = remote_center_class(FaultyConnector, clock)
    connectors = {name: remote(name, {"nvidia-a100-80gb": 8}, latency=latency) for name in names}
    for name in names[:hang]:
        connectors[name].set("hang")
    from pydantic import SecretStr

    from aicn.security_settings import LimitSettings

    # the benchmark is the only client: a bucket that never runs dry, so requests per second are the gateway's own
    limits = LimitSettings(bucket_size=10**9, restore_rate=1e9)
    settings = Settings(data_dir=Path(data_dir), centers=configs, admin_token=SecretStr(TOKEN), limits=limits)
    from aicn.cli import tune_gc

    tune_gc()  # as `aicn serve` does
    app = timed_app(create_app(Runtime(settings, connectors)), clock)
    serve_app(app, port, None)


@dataclass
class Call:
    """One call to a center: when it started and when the center answered (0: not yet)."""

    started: float
    answered: float = 0.0


class CenterClock:
    """Answers the centers' calls at their time from a thread of its own, all that are due in one
    hand-over to the gateway's loop, and notes when each answered (the requests are one at a time)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None], Call]] = []
        self._count = 0
        self._wake = threading.Condition()
        #: the current request's calls: (started, answered or None)
        self.calls: list[Call] = []
        threading.Thread(target=self._run, daemon=True, name="center-clock").start()

    def answer(self, latency: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        started = time.perf_counter()
        call = Call(started)
        self.calls.append(call)
        with self._wake:
            self._count += 1
            entry = (started + latency, self._count, loop, future, call)
            heapq.heappush(self._due, entry)
            if self._due[0] is entry:  # only a new earliest answer changes the clock's wait: no wake-up (nor GIL hand-off) per call
                self._wake.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.perf_counter():
                    self._wake.wait(self._due[0][0] - time.perf_counter() if self._due else None)
                now = time.perf_counter()
                due = []
                while self._due and self._due[0][0] <= now:
                    due.append(heapq.heappop(self._due))
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _, _, loop, future, call in due:
                call.answered = now
                by_loop.setdefault(loop, []).append(future)
            for loop, futures in by_loop.items():
                loop.call_soon_threadsafe(_deliver, futures)


def _deliver(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def remote_center_class(base: type, clock: CenterClock) -> type:
    """The fault-injecting connector, answering ``capacity`` from ``clock`` when it has a latency and no fault."""
    from connectors.base import DeviceCapacity

    class RemoteCenter(base):  # type: ignore[misc]
        async def capacity(self) -> Any:
            latency = self.fault.latency
            if not latency or self.fault.mode != "ok":
                return await super().capacity()
            self.calls["capacity"] += 1
            await clock.answer(latency)
            return [DeviceCapacity(model, total, total) for model, total in self.devices.items()]

    return RemoteCenter


def timed_app(app: Any, clock: CenterClock) -> Any:
    """``app``, telling in headers of each /graphql answer when the calls started and answered."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await app(scope, receive, send)
            return
        arrived = time.perf_counter()
        clock.calls = []

        async def send_timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                responded = time.perf_counter()
                calls = clock.calls
                answered = [call for call in calls if call.answered]
                timings = {"arrived": arrived, "responded": responded}
                if calls:
                    timings["first-call"] = min(call.started for call in calls)
                    timings["last-call"] = max(call.started for call in calls)
                if answered:
                    timings["slowest"] = max(call.answered - call.started for call in answered)
                    timings["last-answer"] = max(call.answered for call in answered)
                line = ",".join(f"{key}={value:.6f}" for key, value in timings.items())
                message = {**message, "headers": [*message.get("headers", []), (b"x-bench-timings", line.encode())]}
            await send(message)

        await app(scope, receive, send_timed)

    return asgi


class Gateway:
    #: the checkout whose gateway is served (``--code``)
    code: Path = ROOT

    def __init__(self, centers: int, latency: float, hang: int = 0, deadline: float = 2.0) -> None:
        self.port = _free_port()
        self.data_dir = tempfile.mkdtemp(prefix="aicn-bench-")
        self.args = [str(centers), str(latency), str(hang), str(deadline), str(self.port), self.data_dir]

    async def __aenter__(self) -> Gateway:
        command = [sys.executable, __file__, "--code", str(self.code), "--serve", *self.args]
        self.process = subprocess.Popen(command, cwd=self.code)
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30, headers={"authorization": f"Bearer {TOKEN}"})
        for _ in range(300):
            try:
                if (await self.client.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        # one request at a time is timed through http.client: about a tenth of httpx's own time
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self

    def post(self, body: bytes) -> http.client.HTTPResponse:
        self.connection.request("POST", "/graphql", body, {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        return self.connection.getresponse()

    async def __aexit__(self, *_: object) -> None:
        self.connection.close()
        await self.client.aclose()
        self.process.terminate()
        self.process.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(gateway: Gateway, runs: int, timings: list[dict[str, float]] | None = None) -> tuple[list[float], dict[str, Any]]:
    """Each request's time at the client in ms, from sending it to its answer read; with ``timings``,
    also what the gateway noted (in ms from the request's arrival)."""
    times: list[float] = []
    request = json.dumps({"query": QUERY}).encode()
    answer = b"{}"
    for _ in range(runs):
        started = time.perf_counter()
        response = gateway.post(request)
        answer = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if timings is not None:
            noted = dict(item.split("=") for item in (response.getheader("x-bench-timings") or "").split(","))
            arrived = float(noted.pop("arrived"))
            timings.append({key: (float(value) if key == "slowest" else float(value) - arrived) * 1000 for key, value in noted.items()})
    body: dict[str, Any] = json.loads(answer)
    return times, body


async def cold_factor(rounds: int = 30) -> float:
    """How much more CPU the same event-loop work (50 tasks, each under a deadline, woken by one
    answer) costs right after the loop slept 50 ms than back to back: the machine's own share of
    the gateway's time after a slow center's answer (a VM's caches go cold while it waits)."""
    loop = asyncio.get_running_loop()

    async def one(answer: asyncio.Future[None]) -> None:
        async with asyncio.timeout(2):
            await answer

    async def cpu_per_round(wait: float) -> float:
        started = time.thread_time()
        for _ in range(rounds):
            answer = loop.create_future()
            loop.call_later(wait, answer.set_result, None)
            await asyncio.gather(*(one(answer) for _ in range(50)))
        return (time.thread_time() - started) / rounds

    await cpu_per_round(0)  # warm up
    return await cpu_per_round(0.05) / await cpu_per_round(0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(only: str | None, runs: int) -> None:
    from connectors.fault import FaultyConnector

    print("aicn fan-out benchmark (loopback, one uvicorn worker, fault-injecting connectors)")

    if only in (None, "1"):
        async with Gateway(centers=50, latency=0.05) as gateway:
            timed(gateway, 5)  # warm up
            noted: list[dict[str, float]] = []
            times, body = timed(gateway, runs, noted)
            total = body["data"]["computeUnits"]["totalCount"]
            slowest = [entry["slowest"] for entry in noted]
            ratios = [time_ / center for time_, center in zip(times, slowest, strict=True)]
            print(f"\n1. 50 centers x 50 ms, {total} compute units per answer, {runs} runs (code: {Gateway.code})")
            print(f"   gateway p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms")
            print(f"   slowest center's answer p50 {percentile(slowest, 0.5):.2f} ms, p95 {percentile(slowest, 0.95):.2f} ms")
            print(
                f"   ratio gateway/slowest center, same request: p50 {percentile(ratios, 0.5):.3f}, p95 {percentile(ratios, 0.95):.3f} (target <= 1.1)"
            )

            def part(values: list[float]) -> str:
                return f"p50 {percentile(values, 0.5):.2f} ms, p95 {percentile(values, 0.95):.2f} ms"

            print(f"   in the gateway: arrival to the first call {part([entry['first-call'] for entry in noted])}")
            print(f"   starting the 50 calls {part([entry['last-call'] - entry['first-call'] for entry in noted])}")
            print(f"   last answer to the response's first byte {part([entry['responded'] - entry['last-answer'] for entry in noted])}")
            outside = [time_ - entry["responded"] for time_, entry in zip(times, noted, strict=True)]
            print(f"   outside the gateway's view (client, loopback, uvicorn, body) {part(outside)}")
            cold = await cold_factor()
            print(f"   on this machine the same loop work costs {cold:.1f}x the CPU right after a 50 ms wait as back to back")
            sequential = 50 * 50
            print(f"   one after another would take {sequential} ms: {sequential / percentile(times, 0.5):.0f}x slower than the gateway")

    if only in (None, "2"):
        async with Gateway(centers=50, latency=0.05, hang=1, deadline=0.2) as gateway:
            timed(gateway, 3)
            times, body = timed(gateway, 20)
            p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
            data = body["data"]["computeUnits"]
            errors: list[dict[str, Any]] = body.get("errors", [])
            print("\n2. 50 centers x 50 ms, one hanging (deadline 200 ms), 20 runs")
            print(f"   gateway p50 {p50:.1f} ms, p95 {p95:.1f} ms; deadline + 20 ms = 220 ms")
            print(
                f"   answer carried {data['totalCount']} of 50 centers' units and {len(errors)} error(s): {[e['extensions']['code'] for e in errors]}"
            )

    if only in (None, "3"):
        async with Gateway(centers=10, latency=0.0) as gateway:
            client = gateway.client
            timed(gateway, 20)
            times, _ = timed(gateway, 200)
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
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose gateway is served (default: this one)")
    parser.add_argument("--only", choices=["1", "2", "3"])
    parser.add_argument("--runs", type=int, default=50, help="requests measured in part 1")
    arguments = parser.parse_args()
    Gateway.code = arguments.code.resolve()
    sys.path.insert(0, str(Gateway.code))
    if arguments.serve:
        centers, latency, hang, deadline, port, data_dir = arguments.serve
        os.environ.setdefault("AICN_LOG_LEVEL", "warning")
        serve(int(centers), float(latency), int(hang), float(deadline), int(port), data_dir)
    else:
        asyncio.run(main(arguments.only, arguments.runs))
