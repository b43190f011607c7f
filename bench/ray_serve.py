"""How long a RAY service's replicas take to come up, against a Ray job on the same head.

On the Ray head (default http://127.0.0.1:8265, scripts/start-ray.sh): the time from hand-over to
RUNNING of the first replica of a new Serve application (package check, PUT, replica start and
model load), of a second replica added to it (a light update: the first keeps running), and of a
plain Ray job (the baseline, measured in the same run); then the time to take both replicas out.
Needs scikit-learn and skl2onnx (the test extras) to make the model.

    python bench/ray_serve.py [--url http://127.0.0.1:8265]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import CenterJobState, JobSpec, StatusQuery
from connectors.ray.connector import RayConnector
from connectors.ray.replicas import MODEL_DIR, SERVICE_KEY
from connectors.ray.serve import ServeOptions
from connectors.serving import ONNX_SERVER

TRAIN = """
import sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx
x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
open(sys.argv[1], "wb").write(to_onnx(model, x[:1]).SerializeToString())
"""


def replica(reference: str, key: str, model_dir: Path) -> JobSpec:
    command = (sys.executable, str(ONNX_SERVER), "--port", "1", "--model-dir", str(model_dir))
    return JobSpec(reference, f"bench {reference}", command, 600, {SERVICE_KEY: key, MODEL_DIR: str(model_dir)})


async def until_running(ray: RayConnector, external_id: str) -> float:
    started = time.monotonic()
    while (status := (await ray.status([StatusQuery(external_id)])).get(external_id)) is None or status.state is not CenterJobState.RUNNING:
        if status is not None and status.state.terminal:
            raise SystemExit(f"{external_id} ended {status.state.value}: {status.reason}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def measure(url: str) -> None:
    ray = RayConnector("bench", url, serve=ServeOptions(replica_cpus=0.1))
    await ray.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            model_dir = Path(folder)
            subprocess.run([sys.executable, "-c", TRAIN, str(model_dir / "model.onnx")], check=True, timeout=120)
            key = uuid.uuid4().hex[:12]
            job = await ray.submit(JobSpec(f"bench-{key}", "bench job", (sys.executable, "-c", "import time; time.sleep(30)"), 60, cpus=1))
            baseline = await until_running(ray, job.external_id)
            await ray.cancel(job.external_id)
            first = await ray.submit(replica("one", key, model_dir))
            new_app = await until_running(ray, first.external_id)
            second = await ray.submit(replica("two", key, model_dir))
            added = await until_running(ray, second.external_id)
            started = time.monotonic()
            await ray.cancel(second.external_id)
            await ray.cancel(first.external_id)
            stopped = time.monotonic() - started
        print(f"a Ray job, submitted to RUNNING (baseline):   {baseline:6.2f} s")
        print(f"first replica (a new Serve application):      {new_app:6.2f} s  ({new_app / baseline:.2f}x the job)")
        print(f"second replica (added to the application):    {added:6.2f} s  ({added / baseline:.2f}x the job)")
        print(f"both replicas taken out (application deleted): {stopped:5.2f} s")
    finally:
        await ray.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8265")
    asyncio.run(measure(parser.parse_args().url))


if __name__ == "__main__":
    main()
