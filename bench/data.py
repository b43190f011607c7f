"""Data benchmark: staging throughput against ``cp``, and the gateway's memory while streaming a download.

Run: python bench/data.py [--gib 2] [--staging-mib 1024]

1. Staging: the gateway's copier (resolvers.data.copier.copy_verified, the code that stages
   inputs and makes replicas) copies a folder of files and verifies it, two ways: with no
   digest known, computing SHA-256 on the way (a source the gateway never read); and with
   the digests it computed when the dataset was registered (each file's inode, size, mtime
   and ctime unchanged: only copied). ``cp -r`` copies the same folder in the same run, the
   three alternated (best of three each). Printed: MB/s of each, both ratios, and the speed of
   SHA-256 alone (the floor of a copy hashed on the way).
2. Download: a gateway in a child process (``aicn serve``) streams a file of ``--gib`` GiB
   through ``GET /datasets/{id}/download``; its resident memory (VmRSS) is sampled every
   100 ms while the client reads. Printed: RSS before, the peak while streaming, and the
   throughput. Constant means the peak does not grow with the file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolvers.data.copier import copy_verified  # noqa: E402
from resolvers.data.digest import measure_path  # noqa: E402
from resolvers.data.known import KNOWN, RACY_SECONDS  # noqa: E402

TOKEN = "aicn_bench-data-" + "x" * 24


def make_folder(root: Path, total_mib: int) -> Path:
    folder = root / "source"
    block = os.urandom(1024 * 1024)
    sizes = [64, 16, 4, 1]  # MiB: a few large files and some small ones
    written, index = 0, 0
    while written < total_mib:
        size = min(sizes[index % len(sizes)], total_mib - written)
        path = folder / f"part-{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for _ in range(size):
                out.write(block)
        written, index = written + size, index + 1
    return folder


def best_of(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def staging(total_mib: int, workdir: Path) -> None:
    source = make_folder(workdir, total_mib)
    time.sleep(RACY_SECONDS)  # files written this instant are never remembered (see resolvers.data.known)
    checksum = measure_path(source).checksum  # what registering the dataset does
    uri = source.as_uri()

    def stage(cold: bool) -> None:
        if cold:
            KNOWN.clear()
        target = workdir / "staged"
        copy_verified(uri, target, checksum, lambda _count: None)
        shutil.rmtree(target)

    def cp() -> None:
        target = workdir / "copied"
        subprocess.run(["cp", "-r", str(source), str(target)], check=True)
        shutil.rmtree(target)

    stage(False)  # warm the page cache for all three
    cp()
    cold, warm, copied = [], [], []
    for _ in range(3):
        cold.append(best_of(1, lambda: stage(True)))
        warm.append(best_of(1, lambda: stage(False)))
        copied.append(best_of(1, cp))

    def hash_only() -> None:
        KNOWN.clear()
        measure_path(source)

    hashing = best_of(2, hash_only)
    megabytes = total_mib * 1.048576
    print(
        f"staging {total_mib} MiB: cp -r {megabytes / min(copied):.0f} MB/s; copier hashing on the way {megabytes / min(cold):.0f} MB/s;"
        f" copier with the source's digests known {megabytes / min(warm):.0f} MB/s"
    )
    print(
        f"  ratio copier/cp = {min(cold) / min(copied):.2f}x hashing while copying (a source not read before),"
        f" {min(warm) / min(copied):.2f}x with its digests known (the usual case: registering measured it) (aim: within 1.5x)"
    )
    print(
        f"  SHA-256 alone over the same bytes takes {hashing:.2f} s ({megabytes / hashing:.0f} MB/s), the floor for a copy hashed on the way"
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def download(gib: float, workdir: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    imports = workdir / "imports"
    imports.mkdir()
    big = imports / "big.bin"
    size = int(gib * 1024**3)
    with big.open("wb") as out:
        out.truncate(size)  # a sparse file: the disk is not the bottleneck, the gateway's streaming is
    config = workdir / "aicn.toml"
    config.write_text(f'data_dir = "{workdir / "data"}"\nport = {port}\nlog_level = "warning"\ndata_import_roots = ["{imports}"]\n')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AICN_")}
    environment.update(AICN_CONFIG=str(config), AICN_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "aicn.cli", "serve"], env=environment, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        headers = {"authorization": f"Bearer {TOKEN}"}
        checksum = "sha256:" + _sparse_sha256(size)
        registered = httpx.post(
            f"{url}/graphql",
            headers=headers,
            json={
                "query": 'mutation($u: String!, $c: String!) { registerDataset(input: {name: "big", uri: $u, checksum: $c}) { dataset { id } userErrors { code } } }',
                "variables": {"u": big.as_uri(), "c": checksum},
            },
            timeout=600,
        ).json()
        dataset_id = registered["data"]["registerDataset"]["dataset"]["id"]
        before = rss_kib(process.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(process.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began, received = time.perf_counter(), 0
        with httpx.stream("GET", f"{url}/datasets/{dataset_id}/download", headers=headers, timeout=600) as answer:
            for chunk in answer.iter_raw(1024 * 1024):
                received += len(chunk)
        elapsed = time.perf_counter() - began
        done.set()
        sampler.join()
        assert received == size, (received, size)
        print(f"download {gib:g} GiB: gateway RSS {before / 1024:.0f} MiB before, peak {peak[0] / 1024:.0f} MiB while streaming")
        print(f"  (+{(peak[0] - before) / 1024:.0f} MiB for a {size / 1024**2:.0f} MiB file); {size / elapsed / 1e6:.0f} MB/s")
    finally:
        process.terminate()
        process.wait(30)


def _sparse_sha256(size: int) -> str:
    digest, zeros, left = hashlib.sha256(), bytes(1024 * 1024), size
    while left:
        step = min(left, len(zeros))
        digest.update(zeros[:step])
        left -= step
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--staging-mib", type=int, default=1024)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aicn-bench-data-", dir="/tmp") as workdir:
        staging(options.staging_mib, Path(workdir))
    with tempfile.TemporaryDirectory(prefix="aicn-bench-data-", dir="/tmp") as workdir:
        download(options.gib, Path(workdir))


if __name__ == "__main__":
    main()
