"""Several `aicn serve` replicas over one PostgreSQL schema and one Redis: one data_dir (so that
their LOCAL center is the same one on this host), each its own port and admin token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.served_gateway import ServedGateway, write_config
from tests.waiting import eventually

REDIS_URL = "redis://127.0.0.1:6379/0"
CENTER_LEASE = "center:local"


def replica_config(directory: Path, shared_data: Path, database_url: str, schema: str | None, name: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, database_url, schema)
    text = config.read_text().replace(f'data_dir = "{directory / "data"}"', f'data_dir = "{shared_data}"')
    text = f'bus_url = "{REDIS_URL}"\n' + text + f'\n[replicas]\nname = "{name}"\n' + extra
    config.write_text(text)
    return config


async def readiness(gateway: ServedGateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as http:
        answer = await http.get("/readyz")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def holder_of(gateways: list[ServedGateway], lease: str) -> ServedGateway | None:
    for gateway in gateways:
        if gateway.process is not None and lease in (await readiness(gateway))["leases"]:
            return gateway
    return None


async def wait_for_holder(gateways: list[ServedGateway], lease: str, timeout: float = 20) -> tuple[ServedGateway, float]:
    """The replica that holds ``lease``, once one does, and how long that took."""
    began = time.monotonic()

    async def found() -> ServedGateway | None:
        return await holder_of(gateways, lease)

    gateway = await eventually(found, f"a replica holds {lease}", timeout=timeout, interval=0.05)
    return gateway, time.monotonic() - began


@asynccontextmanager
async def replica_set(
    tmp_path: Path, database_url: str, schema: str | None, count: int, extra: str = ""
) -> AsyncIterator[list[ServedGateway]]:
    """``count`` replicas, started one after another (the first takes every lease). Their rate limit
    is generous unless ``extra`` sets one: the tests poll, and the bucket is one across the replicas."""
    if "[limits]" not in extra:
        extra += "\n[limits]\nbucket_size = 1000000\nmax_cost = 1000000\nrestore_rate = 1000000\n"
    shared = tmp_path / "shared-data"
    gateways = [
        ServedGateway(replica_config(tmp_path / f"replica-{index}", shared, database_url, schema, f"replica-{index}", extra))
        for index in range(count)
    ]
    try:
        for gateway in gateways:
            await gateway.start()
        yield gateways
    finally:
        for gateway in gateways:
            await gateway.stop()
