"""How fast the gateway refuses abusive operations.

Starts a real gateway (uvicorn on a loopback port, SQLite in a temporary directory),
then sends each abusive operation many times and prints the refusal latency: inside the
process (``schema.execute``, what the gate itself costs) and over HTTP (what a client
sees). Every refusal must be ``QUERY_TOO_COMPLEX`` and must not execute anything.

    python bench/limits.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aicn.runtime import Runtime
from aicn.security_settings import LimitSettings
from aicn.settings import CenterConfig, DeviceConfig, Settings
from graph.core.context import Context
from graph.http.app import create_app
from graph.loaders import Loaders
from graph.schema import schema


def deep(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"jobs {{ edges {{ node {{ owner {{ {inner} }} }} }} }}"
    return "{ viewer { " + inner + " } }"


def fragment_bomb(levels: int) -> str:
    fragments = [f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ viewer {{ jobs {{ totalCount }} }} }}")
    return "{ ...F0 }\n" + "\n".join(fragments)


CASES = {
    "deeply nested (depth 22)": deep(5),
    "alias bomb (390 aliases)": "{ " + " ".join(f"a{n}: viewer {{ name }}" for n in range(390)) + " }",
    "huge first (1e9)": "{ jobs(first: 1000000000) { edges { node { id events(first: 100) { edges { node { seq } } } } } } }",
    "fragment bomb (2^25 fields)": fragment_bomb(25),
    "token flood (8000 tokens)": "{ " + " ".join("viewer { name }" for _ in range(2_000)) + " }",
    "long text (1 MB)": "{ viewer { name } }" + " " * 1_000_000,
}


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms   max {ordered[-1]:6.2f} ms"


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            data_dir=Path(directory) / "data",
            database_url=f"sqlite+aiosqlite:///{directory}/bench.db",
            centers=[CenterConfig(name="local", devices=[DeviceConfig(accelerator="cpu-core", count=1)])],
            limits=LimitSettings(bucket_size=100_000_000, restore_rate=100_000_000.0, max_body_bytes=2_000_000),
            admin_token=SecretStr("aicn_bench-admin-token-0000000000"),
        )
        runtime = Runtime(settings)
        server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        secret = settings.admin_token.get_secret_value()  # type: ignore[union-attr]
        viewer = await runtime.access.authenticate(secret)
        assert viewer is not None
        print(f"refusal latency over {rounds} rounds (2-vCPU-class machine: what matters is the order of magnitude)\n")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {secret}"}) as client:
            for name, query in CASES.items():
                in_process: list[float] = []
                over_http: list[float] = []
                for round_ in range(rounds):
                    text = f"{query}\n# {round_}"  # a new text each time: no help from the parse cache
                    context = Context(
                        services=runtime.services, limits=runtime.settings.limits, viewer=viewer, make_loaders=Loaders, throttle_key="bench"
                    )
                    started = time.perf_counter()
                    result = await schema.execute(text, context_value=context)
                    in_process.append((time.perf_counter() - started) * 1000)
                    assert result.errors and (result.errors[0].extensions or {}).get("code") == "QUERY_TOO_COMPLEX", (name, result.errors)
                    started = time.perf_counter()
                    response = await client.post("/graphql", json={"query": text + " "})
                    over_http.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 400, (name, response.text[:200])
                print(f"{name}\n  in process: {summary(in_process)}\n  over HTTP:  {summary(over_http)}")
        server.should_exit = True
        await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
