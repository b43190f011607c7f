"""Fixtures: a real gateway (uvicorn on a loopback port) on SQLite, and on PostgreSQL too for `both_databases` tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from aicn.runtime import Runtime
from aicn.security_settings import LimitSettings
from aicn.serving import server_config
from aicn.settings import CenterConfig, DeviceConfig, Settings
from graph.http.app import create_app
from store.db import Database
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


# Which database a test runs on.
#
# A test that asks for ``database`` (or ``gateway``/``gateway_factory``, which use it) runs ONCE,
# on SQLite, unless its behaviour depends on the database: then it is marked ``both_databases``
# (a test, or a module with ``pytestmark``) and runs on SQLite and on PostgreSQL, with the ids
# ``[sqlite]`` and ``[postgres]``. A test may also pin one database itself with
# ``@pytest.mark.parametrize("database", ["postgres"], indirect=True)``.
#
# On both: the store, the job ledger, metering and billing, migrations, the placement queue,
# tenant isolation, the data the graph reads and the fuzzer. Once: HTTP, limits, auth over
# HTTP and WebSocket, fan-out to centers, connectors, the bus, settings and the schema.
# Under CI=true a PostgreSQL (or Redis, or slurmrestd) that does not answer fails the run.
DIALECTS = ("sqlite", "postgres")
BOTH_DATABASES = "both_databases"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" not in metafunc.fixturenames or metafunc.definition.get_closest_marker(BOTH_DATABASES) is None:
        return
    if not any("database" in _argnames(marker) for marker in metafunc.definition.iter_markers("parametrize")):
        metafunc.parametrize("database", DIALECTS, indirect=True)


def _argnames(parametrize: pytest.Mark) -> list[str]:
    names = parametrize.kwargs.get("argnames", parametrize.args[0] if parametrize.args else ())
    return [name.strip() for name in names.split(",")] if isinstance(names, str) else list(names)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file brought to the newest migration once per session. Each test's database is a
    copy: migrations run from scratch once, not at every gateway start (the gateway's own
    ``migrate()`` then finds the schema at head). Migrations hold no rows, so a copy is exactly
    what a first start would have made."""
    path = tmp_path_factory.mktemp("migrated") / "aicn.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(migrate())
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not path.with_name(path.name + "-wal").exists(), "the migrated file must be whole without its WAL"
    return path


@pytest.fixture
async def database(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[DatabaseChoice]:
    dialect = getattr(request, "param", "sqlite")
    assert dialect in DIALECTS, dialect
    if dialect == "sqlite":
        shutil.copyfile(migrated_sqlite, tmp_path / "aicn.db")
        yield DatabaseChoice(url=f"sqlite+aiosqlite:///{tmp_path / 'aicn.db'}", schema=None)
        return
    require_service("127.0.0.1", 5432, "PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield DatabaseChoice(url=POSTGRES_URL, schema=schema)
    await drop_schema(POSTGRES_URL, schema)


@pytest.fixture
async def db(database: DatabaseChoice) -> AsyncIterator[Database]:
    """A handle on the test's database, migrated to the newest revision."""
    handle = Database(database.url or "", schema=database.schema)
    await handle.migrate()
    try:
        yield handle
    finally:
        await handle.dispose()


#: a test's own statements on PostgreSQL wait this long for a lock, then fail: never for ever
TEST_LOCK_TIMEOUT = "60s"


async def drop_schema(url: str, schema: str) -> None:
    """Drop a test's schema; a session still holding one of its tables fails this, after
    TEST_LOCK_TIMEOUT, instead of hanging the run."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{TEST_LOCK_TIMEOUT}'")
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()


def local_center(name: str = "local", cores: int = 2, price: str = "0.50", **overrides: Any) -> CenterConfig:
    return CenterConfig(
        name=name,
        display_name=f"Center {name}",
        region="test",
        devices=[DeviceConfig(accelerator="cpu-core", count=cores, price_per_unit_hour=price)],
        **({"poll_interval_seconds": 0.05} | overrides),
    )


#: tests send many requests quickly: a bucket that never runs dry unless a test asks for one
GENEROUS_LIMITS = LimitSettings(bucket_size=10_000_000, restore_rate=1_000_000.0)


@dataclass
class Gateway:
    """A running gateway. ``client`` holds a read+submit token of the default account,
    ``admin`` the admin token (``AICN_ADMIN_TOKEN``); ``connect`` makes more clients."""

    url: str
    runtime: Runtime
    client: GraphQLClient
    admin: GraphQLClient
    server: uvicorn.Server
    task: asyncio.Task[None]
    extra_clients: list[GraphQLClient]

    def connect(self, token: str | None = None) -> GraphQLClient:
        client = GraphQLClient(self.url, token)
        self.extra_clients.append(client)
        return client

    async def stop(self) -> None:
        for client in [self.client, self.admin, *self.extra_clients]:
            await client.close()
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 15)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(limit=6)
            raise


async def start_gateway(settings: Settings, connectors: dict[str, Any] | None = None) -> Gateway:
    if settings.admin_token is None:
        settings = settings.model_copy(update={"admin_token": SecretStr("aicn_test-admin-" + secrets.token_urlsafe(16))})
    assert settings.admin_token is not None
    runtime = Runtime(settings, connectors)
    app = create_app(runtime)
    config = server_config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")  # as `aicn serve` is
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert runtime.default_viewer is not None
    member = await runtime.access.create_token(runtime.default_viewer.account_id, "tests", ["read", "submit"])
    assert member.secret is not None, member.errors
    return Gateway(
        url=url,
        runtime=runtime,
        client=GraphQLClient(url, member.secret),
        admin=GraphQLClient(url, settings.admin_token.get_secret_value()),
        server=server,
        task=task,
        extra_clients=[],
    )


GatewayFactory = Callable[..., "asyncio.Future[Gateway]"]


@pytest.fixture
async def gateway_factory(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def make(centers: list[CenterConfig] | None = None, connectors: dict[str, Any] | None = None, **settings: Any) -> Gateway:
        settings.setdefault("limits", GENEROUS_LIMITS)
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
