"""S3 artifact store benchmark: uploads and downloads through the gateway against boto3 talking to the store directly.

Run: bash scripts/start-ceph.sh && python bench/s3.py [--mib 512]

Against the real Ceph RADOS Gateway of ``scripts/start-ceph.sh`` (``/run/ceph-ci.env``). A
gateway in a child process (``aicn serve``, ``[storage] kind = "s3"``) takes ``POST
/datasets/upload`` of ``--mib`` MiB, then streams it back through ``GET
/datasets/{id}/download``; in the same run boto3 uploads the same bytes straight to the store
(multipart, the same part size) and reads them back. The two are alternated (best of three
each). Printed: MB/s of each, the ratio gateway / direct, and the gateway's resident memory
(VmRSS, sampled every 100 ms) before and at its peak: constant means it does not grow with
the file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aicn.runtime import object_store  # noqa: E402
from aicn.storage_settings import StorageSettings  # noqa: E402

TOKEN = "aicn_bench-s3-" + "x" * 24
BLOCK = os.urandom(1024 * 1024)
PART_BYTES = 8 * 1024 * 1024


def body(mib: int) -> Iterator[bytes]:
    for index in range(mib):
        yield index.to_bytes(8, "big") + BLOCK[8:]  # no two MiB alike


def checksum(mib: int) -> str:
    digest = hashlib.sha256()
    for block in body(mib):
        digest.update(block)
    return "sha256:" + digest.hexdigest()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Peak:
    """The highest RSS of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kib, self._done = pid, rss_kib(pid), threading.Event()

    def __enter__(self) -> Peak:
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.kib = max(self.kib, rss_kib(self.pid))
            time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def best_of(runs: int, action: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def storage_settings() -> StorageSettings:
    ceph = dict(line.split("=", 1) for line in Path("/run/ceph-ci.env").read_text().splitlines() if "=" in line)
    return StorageSettings(
        kind="s3",
        endpoint=ceph["CEPH_S3_ENDPOINT"],
        bucket="aicn-bench",
        prefix=f"bench-{uuid.uuid4().hex[:8]}/",
        access_key_id=ceph["CEPH_S3_ACCESS_KEY"],
        secret_access_key_file=ceph["CEPH_S3_SECRET_KEY_FILE"],
        part_bytes=PART_BYTES,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    mib, size = options.mib, options.mib * 1024 * 1024
    settings = storage_settings()
    store = object_store(settings)
    assert store is not None
    store.ensure_bucket()
    expected = checksum(mib)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="aicn-bench-s3-", dir="/tmp"))
    storage = "\n".join(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in settings.model_dump(exclude_none=True).items())
    config = workdir / "aicn.toml"
    config.write_text(
        f'data_dir = "{workdir / "data"}"\nport = {port}\nlog_level = "warning"\nupload_max_bytes = {size + 1}\n[storage]\n{storage}\n'
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AICN_")}
    environment.update(AICN_CONFIG=str(config), AICN_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "aicn.cli", "serve"], env=environment, cwd=workdir)
    url, headers = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {TOKEN}"}
    uploaded: list[str] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

        def through_gateway() -> None:
            answer = httpx.post(
                f"{url}/datasets/upload",
                params={"name": "big", "version": str(len(uploaded) + 1)},
                headers={**headers, "x-checksum": expected, "content-length": str(size)},
                content=body(mib),
                timeout=600,
            )
            assert answer.status_code == 201, answer.text
            uploaded.append(answer.json()["data"]["id"])

        direct_key = f"{settings.prefix}direct"

        def direct() -> None:
            upload_id = store.begin(direct_key)
            etags: list[str] = []
            pending = bytearray()
            for block in body(mib):
                pending += block
                if len(pending) >= PART_BYTES:
                    etags.append(store.put_part(direct_key, upload_id, len(etags) + 1, bytes(pending)))
                    pending.clear()
            if pending:
                etags.append(store.put_part(direct_key, upload_id, len(etags) + 1, bytes(pending)))
            store.complete(direct_key, upload_id, etags)

        def download_gateway() -> None:
            received = 0
            with httpx.stream("GET", f"{url}/datasets/{uploaded[0]}/download", headers=headers, timeout=600) as answer:
                for chunk in answer.iter_raw(1024 * 1024):
                    received += len(chunk)
            assert received == size

        def download_direct() -> None:
            answer = store.client.get_object(Bucket=settings.bucket, Key=direct_key)
            assert sum(len(chunk) for chunk in answer["Body"].iter_chunks(1024 * 1024)) == size

        before = rss_kib(process.pid)
        up_gateway, up_direct = float("inf"), float("inf")
        with Peak(process.pid) as up_peak:
            for _ in range(options.runs):  # alternated: neither gets a warmer store
                up_gateway = min(up_gateway, best_of(1, through_gateway))
                up_direct = min(up_direct, best_of(1, direct))
        down_gateway, down_direct = float("inf"), float("inf")
        with Peak(process.pid) as down_peak:
            for _ in range(options.runs):
                down_gateway = min(down_gateway, best_of(1, download_gateway))
                down_direct = min(down_direct, best_of(1, download_direct))
        print(f"S3 (Ceph RGW) {mib} MiB, best of {options.runs}, parts of {PART_BYTES // 2**20} MiB:")
        print(
            f"  upload:   gateway {size / up_gateway / 1e6:.0f} MB/s (hashed on the way), boto3 direct {size / up_direct / 1e6:.0f} MB/s;"
            f" gateway/direct time ratio {up_gateway / up_direct:.2f}x"
        )
        print(
            f"  download: gateway {size / down_gateway / 1e6:.0f} MB/s, boto3 direct {size / down_direct / 1e6:.0f} MB/s;"
            f" gateway/direct time ratio {down_gateway / down_direct:.2f}x"
        )
        print(
            f"  gateway RSS {before / 1024:.0f} MiB before, peak {up_peak.kib / 1024:.0f} MiB uploading,"
            f" {down_peak.kib / 1024:.0f} MiB downloading (a {mib} MiB object)"
        )
    finally:
        process.terminate()
        process.wait(30)
        for key in store.keys():
            store.delete(key)


if __name__ == "__main__":
    main()
