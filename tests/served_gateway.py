"""The gateway as a separate process (`aicn serve`), configured by an AICN_CONFIG TOML file,
so that tests can SIGKILL it at a chosen moment and start it again on the same data."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.client import GraphQLClient

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(directory: Path, database_url: str, schema: str | None, price: str = "36000.00") -> Path:
    lines = [
        f'data_dir = "{directory / "data"}"',
        f'database_url = "{database_url}"',
        *([f'database_schema = "{schema}"'] if schema else []),
        'host = "127.0.0.1"',
        f"port = {free_port()}",
        'log_level = "warning"',
        "",
        "[[centers]]",
        'name = "local"',
        'kind = "LOCAL"',
        'display_name = "Local"',
        'region = "test"',
        "poll_interval_seconds = 0.05",
        "[[centers.devices]]",
        'accelerator = "cpu-core"',
        "count = 2",
        f'price_per_unit_hour = "{price}"',
    ]
    path = directory / "aicn.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class ServedGateway:
    def __init__(self, config: Path, wrapper: Sequence[str] = ()) -> None:
        """``wrapper`` runs the gateway through another program (e.g. setpriv dropping capabilities)."""
        self.wrapper = list(wrapper)
        # the same admin token across restarts: registered on the first start, kept in the database
        self.token = "aicn_served-" + secrets.token_urlsafe(16)
        self.config = config
        self.port = int(next(line for line in config.read_text().splitlines() if line.startswith("port")).split("=")[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = GraphQLClient(self.url, self.token)
        self.log = config.parent / "gateway.log"

    async def start(self, timeout: float = 30, attempts: int = 3) -> None:
        """Start ``aicn serve`` and return once it answers as this gateway (its admin token works).

        Other suites on this machine start gateways too: one may take the port between our pick
        and our bind (or between a kill and a restart), and would answer /readyz in our place.
        A gateway that could not bind moves to another free port and starts again."""
        for _ in range(attempts):
            if await self._start_once(timeout):
                return
            await self._move_to(free_port())
        raise AssertionError(f"the gateway found no free port in {attempts} attempts")

    async def _start_once(self, timeout: float) -> bool:
        """True once ready; False when the port was taken by another process."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith("AICN_")}
        environment.update(AICN_CONFIG=str(self.config), PYTHONPATH=str(ROOT), AICN_ADMIN_TOKEN=self.token)
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "aicn.cli", "serve"], cwd=self.config.parent, env=environment, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    output = self.log.read_bytes()[logged:].decode(errors="replace")
                    if "already in use" in output:
                        return False
                    raise AssertionError(f"the gateway exited: {output[-2000:]}")
                if await self._answers_as_us(http):
                    return True
                await asyncio.sleep(0.1)
        raise AssertionError("the gateway did not become ready")

    async def _answers_as_us(self, http: httpx.AsyncClient) -> bool:
        try:
            if (await http.get("/readyz")).status_code != 200:
                return False
            headers = {"authorization": f"Bearer {self.token}"}
            answer = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=headers)
            ours = answer.status_code == 200 and "errors" not in answer.json()
        except (httpx.HTTPError, ValueError):
            return False
        return ours and self.process is not None and self.process.poll() is None

    async def _move_to(self, port: int) -> None:
        await self.client.close()
        text = self.config.read_text()
        self.config.write_text(text.replace(f"port = {self.port}\n", f"port = {port}\n"))
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.client = GraphQLClient(self.url, self.token)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        await self.client.close()
        self.client = GraphQLClient(self.url, self.token)


@asynccontextmanager
async def served_gateway(directory: Path, database_url: str, schema: str | None, extra_config: str = "") -> AsyncIterator[ServedGateway]:
    """A gateway process on write_config's one LOCAL center, plus ``extra_config`` (TOML appended), stopped after."""
    config = write_config(directory, database_url, schema)
    config.write_text(config.read_text() + extra_config)
    gateway = ServedGateway(config)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
