"""Placement benchmark: how fast the network queue places waiting jobs over many centers.

Run: python bench/placement.py            (prints figures; about a minute)

1. Decisions alone: 10,000 jobs ranked over 10, 25, 50 and 100 centers (offers from a
   capacity snapshot, ranked by policy): decisions per second and microseconds per
   decision per center, which stays flat when the cost grows linearly in centers.
2. The whole dispatch: 10,000 jobs waiting in the network queue (SQLite), 50 centers
   behind fault-injecting connectors; rounds of ``dispatch_queue`` until every job is
   handed over: jobs placed per second, each with its placement written and its
   PLACEMENT and state events in the log, on SQLite and on the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from aicn.runtime import Runtime  # noqa: E402
from aicn.settings import CenterConfig, DeviceConfig, Settings  # noqa: E402
from connectors.fault import FaultyConnector  # noqa: E402
from resolvers.jobs.ranking import rank  # noqa: E402
from resolvers.jobs.resources import ResourceRequest  # noqa: E402
from resolvers.jobs.states import JobKind, JobState  # noqa: E402
from store.tables import JobRow  # noqa: E402

JOBS = 10_000
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ADMIN_TOKEN = SecretStr("aicn_bench-" + "x" * 24)  # given, so that no first-start token is printed
MODELS = ["nvidia-a100-80gb", "nvidia-h100-80gb", "huawei-ascend-910b", "cpu-core"]


def centers_config(count: int, latency: float = 0.0) -> tuple[list[CenterConfig], dict[str, FaultyConnector]]:
    configs: list[CenterConfig] = []
    connectors: dict[str, FaultyConnector] = {}
    for index in range(count):
        name = f"c{index:03d}"
        devices = {model: 400 for model in MODELS[: 1 + index % len(MODELS)]}
        configs.append(
            CenterConfig(
                name=name,
                devices=[
                    DeviceConfig(accelerator=model, count=total, price_per_unit_hour=Decimal("1.00") + Decimal(index) / 100)
                    for model, total in devices.items()
                ],
                probe_interval_seconds=3600,
            )
        )
        connectors[name] = FaultyConnector(name, devices, latency=latency)
    return configs, connectors


async def decisions(center_count: int) -> tuple[float, float]:
    configs, connectors = centers_config(center_count)
    runtime = Runtime(Settings(data_dir=Path(tempfile.mkdtemp(prefix="aicn-bench-")), centers=configs, admin_token=ADMIN_TOKEN), connectors)
    await runtime.start(reconcile=False)
    try:
        snapshot = await runtime.dispatcher.snapshot()
        needs = [ResourceRequest(60, MODELS[n % 3], 1 + n % 4) for n in range(JOBS)]
        started = time.perf_counter()
        for need in needs:
            candidates = rank(runtime.dispatcher.offers(need, snapshot, None), "CHEAPEST", snapshot.taken_at)
            assert candidates[0].offer.feasible
        elapsed = time.perf_counter() - started
    finally:
        await runtime.stop()
    return JOBS / elapsed, elapsed / JOBS / center_count * 1e6


async def dispatch_all(center_count: int, database_url: str | None = None, latency: float = 0.0) -> tuple[float, int]:
    configs, connectors = centers_config(center_count, latency)
    schema = f"bench_{secrets.token_hex(4)}" if database_url else None
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="aicn-bench-")),
        centers=configs,
        database_url=database_url,
        database_schema=schema,
        admin_token=ADMIN_TOKEN,
    )
    runtime = Runtime(settings, connectors)
    await runtime.start(reconcile=False)
    try:
        account = runtime.default_viewer.account_id  # type: ignore[union-attr]
        async with runtime.db.transaction() as session:
            session.add_all(
                JobRow(
                    owner_id=account,
                    reference=f"bench-{secrets.token_hex(8)}",
                    name=f"queued-{n}",
                    kind=JobKind.BATCH,
                    state=JobState.QUEUED,
                    request=ResourceRequest(max_duration_minutes=60, accelerator=MODELS[n % 3], devices=1),
                    command=["true"],
                    policy="CHEAPEST",
                    progress_count=0,
                    last_seq=0,
                )
                for n in range(JOBS)
            )
        started = time.perf_counter()
        placed = 0
        rounds = 0
        while placed < JOBS:
            done = await runtime.dispatcher.dispatch_queue()
            rounds += 1
            if done == 0:
                break
            placed += done
        elapsed = time.perf_counter() - started
    finally:
        if schema:
            async with runtime.db.engine.begin() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await runtime.stop()
    return placed / elapsed, placed


async def main() -> None:
    print(f"aicn placement benchmark: {JOBS:,} jobs, fault-injecting connectors, SQLite")
    print("\n1. decisions alone (offers from a capacity snapshot, ranked CHEAPEST)")
    for count in (10, 25, 50, 100):
        rate, per_center = await decisions(count)
        print(f"   {count:3d} centers: {rate:9,.0f} decisions/s, {per_center:6.2f} us per decision per center")
    print("\n2. the whole network-queue dispatch over 50 centers (placement written, events logged, handed over)")
    rate, placed = await dispatch_all(50)
    print(f"   SQLite:     {placed:,} jobs placed at {rate:,.0f} jobs/s")
    rate, placed = await dispatch_all(50, POSTGRES_URL)
    print(f"   PostgreSQL: {placed:,} jobs placed at {rate:,.0f} jobs/s")
    rate, placed = await dispatch_all(50, POSTGRES_URL, latency=0.02)
    print(f"   PostgreSQL, every center answering after 20 ms (a slurmrestd is slower): {placed:,} jobs at {rate:,.0f} jobs/s")


if __name__ == "__main__":
    asyncio.run(main())
