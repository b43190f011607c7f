"""What following a RAY job's progress moves over the network: the log tail once, against the whole log each poll.

Submits a job to the Ray head (default http://127.0.0.1:8265, scripts/start-ray.sh) that writes
``--lines`` lines of about 100 bytes, reports progress, and runs ``--seconds`` longer; polls its status
every 0.25 s as the reconciler does, and prints the bytes the connector received over Ray's log tail
against what fetching ``GET /api/jobs/{id}/logs`` on each of those polls (the connector before) would
have moved.

    python bench/ray_logs.py [--url http://127.0.0.1:8265] [--lines 20000] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import CenterJobState, JobSpec, StatusQuery
from connectors.ray.api import job_path
from connectors.ray.connector import RayConnector

SCRIPT = """
import sys, time
for i in range(int(sys.argv[1])):
    print("x" * 96, i)
print('AICN_PROGRESS {"fraction": 1.0}', flush=True)
time.sleep(float(sys.argv[2]))
"""


async def measure(url: str, lines: int, seconds: float) -> None:
    ray = RayConnector("bench", url)
    await ray.start()
    try:
        spec = JobSpec(f"bench-{uuid.uuid4().hex[:10]}", "bench", (sys.executable, "-c", SCRIPT, str(lines), str(seconds)), 120)
        submission = await ray.submit(spec)
        polls = whole_log_bytes = 0
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while True:
                status = (await ray.status([StatusQuery(submission.external_id)]))[submission.external_id]
                if status.state is not CenterJobState.QUEUED:
                    polls += 1
                    whole_log_bytes += len((await http.get(job_path(submission.external_id, "/logs"))).content)
                if status.state.terminal:
                    break
                await asyncio.sleep(0.25)
        tail_bytes = (await ray.read_log(submission.external_id, -1, 1)).next_offset
        print(f"{polls} polls of a job with a {tail_bytes:,}-byte log (progress reports: {len(status.progress)}):")
        print(f"  over the log tail, once:        {tail_bytes:>14,} bytes")
        print(f"  GET /logs on each poll (before): {whole_log_bytes:>14,} bytes")
    finally:
        await ray.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8265")
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    arguments = parser.parse_args()
    asyncio.run(measure(arguments.url, arguments.lines, arguments.seconds))


if __name__ == "__main__":
    main()
