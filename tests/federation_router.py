"""A real federation router (Apollo Gateway, tests/federation/) and a second tiny subgraph for it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import strawberry
import uvicorn
from strawberry.asgi import GraphQL

from tests.served_gateway import free_port

ROUTER_DIR = Path(__file__).resolve().parent / "federation"
#: the user directory's entries, by account name
TEAMS = {"default": "platform"}


@strawberry.federation.type(keys=["id"])
class Account:
    """The directory's side of aicn's `Account`: it adds the account's team."""

    id: strawberry.ID

    @strawberry.field
    def team(self) -> str:
        return "directory:" + str(self.id)[:8]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Account:
        return cls(id=id)


@strawberry.type
class DirectoryQuery:
    @strawberry.field
    def directory_size(self) -> int:
        return len(TEAMS)


directory_schema = strawberry.federation.Schema(query=DirectoryQuery, types=[Account], federation_version="2.9")


@asynccontextmanager
async def served_directory() -> AsyncIterator[str]:
    """The directory subgraph on a loopback port."""
    server = uvicorn.Server(uvicorn.Config(GraphQL(directory_schema), host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def router(subgraphs: dict[str, str], script: str = "router.mjs", timeout: float = 60) -> AsyncIterator[str]:
    """A router (``script``: Apollo Gateway, or ``hive.mjs``: Hive Gateway) composing ``subgraphs``
    (name -> URL); yields its GraphQL URL."""
    node = shutil.which("node")
    if node is None or not (ROUTER_DIR / "node_modules" / "@apollo" / "gateway").is_dir():
        if os.environ.get("CI") == "true":
            raise AssertionError("the federation router is not installed: run `npm ci` in tests/federation (.ci/run does)")
        pytest.skip("the federation router is not installed (npm ci in tests/federation)")
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "SUBGRAPHS": json.dumps([{"name": name, "url": url} for name, url in subgraphs.items()]),
    }
    log = ROUTER_DIR / f"router-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen([node, script], cwd=ROUTER_DIR, env=environment, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + timeout
        while "ready" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the router did not start: {log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:  # Hive Gateway waits for open streams: our own child, end it
            process.kill()
            process.wait(5)
        log.unlink(missing_ok=True)
