"""Fixtures: a real gateway (uvicorn on a loopback port) on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from aicn.runtime import Runtime
from aicn.settings import CenterConfig, DeviceConfig, Settings
from graph.app import create_app
from tests.client import GraphQLClient

POSTGRES_URL = os.environ.get("AICN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(host: str, port: int, what: str) -> None:
    """Skip on a laptop without the service; under CI a missing service fails the run."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError:
        message = f"{what} is not reachable at {host}:{port}"
        if IN_CI:
            pytest.fail(message + " (CI=true: required)")
        pytest.skip(message)


@dataclass
class DatabaseChoice:
    url: str | None
    schema: str | None


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseChoice]:
    if request.param == "sqlite":
        yield DatabaseChoice(url=f"sqlite+aiosqlite:///{tmp_path / 'aicn.db'}", schema=None)
        return
    require_service("127.0.0.1", 5432, "PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield DatabaseChoice(url=POSTGRES_URL, schema=schema)
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await engine.dispose()


def local_center(name: str = "local", cores: int = 2, price: str = "0.50", **overrides: Any) -> CenterConfig:
    return CenterConfig(
        name=name,
        display_name=f"Center {name}",
        region="test",
        devices=[DeviceConfig(accelerator="cpu-core", count=cores, price_per_unit_hour=price)],
        poll_interval_seconds=0.05,
        **overrides,
    )


@dataclass
class Gateway:
    url: str
    runtime: Runtime
    client: GraphQLClient
    server: uvicorn.Server
    task: "asyncio.Task[None]"

    async def stop(self) -> None:
        await self.client.close()
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 15)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(limit=6)
            raise


async def start_gateway(settings: Settings, connectors: dict[str, Any] | None = None) -> Gateway:
    runtime = Runtime(settings, connectors)
    app = create_app(runtime)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    return Gateway(url=url, runtime=runtime, client=GraphQLClient(url), server=server, task=task)


GatewayFactory = Callable[..., "asyncio.Future[Gateway]"]


@pytest.fixture
async def gateway_factory(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def make(centers: list[CenterConfig] | None = None, connectors: dict[str, Any] | None = None, **settings: Any) -> Gateway:
        gateway = await start_gateway(
            Settings(
                data_dir=tmp_path / "data",
                database_url=database.url,
                database_schema=database.schema,
                centers=centers or [local_center()],
                **settings,
            ),
            connectors,
        )
        started.append(gateway)
        return gateway

    yield make
    for gateway in reversed(started):
        if not gateway.task.done():
            await gateway.stop()


@pytest.fixture
async def gateway(gateway_factory: Callable[..., Any]) -> Gateway:
    return await gateway_factory()


@pytest.fixture
def gql(gateway: Gateway) -> GraphQLClient:
    return gateway.client


@pytest.fixture(scope="session")
def slurm_output_dir() -> Iterator[str]:
    """A world-writable directory for SLURM jobs' output (jobs may run as other users)."""
    directory = tempfile.mkdtemp(prefix="aicn-slurm-e2e-", dir="/tmp")
    os.chmod(directory, 0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
