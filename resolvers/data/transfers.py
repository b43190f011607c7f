"""Transfers: verified copies of datasets to centers, tracked in the database.

A transfer is a row (QUEUED → COPYING → VERIFIED, or FAILED with a code) that the copy
keeps up to date: bytes done and total, and at the end the checksum it computed while
copying. Two kinds:

* a **replica** (``replicateDataset``): the center's copy under ``<data root>/replicas``;
  its replica row is COPYING while the copy runs and VERIFIED once the checksum matched,
  and is deleted when the copy fails;
* a **staged input**: a job's input copied into its ``AICN_INPUT_DIR`` before it starts
  (see ``stage_inputs``); a center with a verified replica gets a link to it, no copy.

A gateway that stops or is killed mid-copy leaves the transfer open; the next start
copies it again from the beginning (the partial copy is removed first), so a replica is
never marked VERIFIED half-done. A staged input's transfer is closed as interrupted
instead: the job's hand-over, finished on restart, stages it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.access.viewer import Viewer
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key
from resolvers.data.areas import JobArea, file_uri, path_of, replica_path, safe_name
from resolvers.data.copier import TransferFailed, TransferStopped, copy_verified, readable_scheme
from resolvers.data.digest import Measured
from resolvers.data.objects import ObjectStore
from resolvers.data.quota import storage_refusal
from store import datasets as dataset_store
from store import jobs as job_store
from store import transfers as transfer_store
from store.db import Database
from store.tables import DatasetReplicaRow, DatasetRow, JobRow, TransferRow
from store.types import utcnow

log = logging.getLogger(__name__)

#: how often a running copy writes its progress (and a staging job gets a STAGING event)
PROGRESS_INTERVAL_SECONDS = 0.25

#: told of a copy's progress; answers False when the copy is no longer wanted (its job was cancelled)
Report = Callable[[TransferRow, DatasetRow], Awaitable[bool]]


@dataclass
class Requested:
    transfer: TransferRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


class _Progress:
    """Bytes copied so far, counted by the copying thread; also its brake and its stop switch."""

    def __init__(self, bytes_per_second: int | None, stopping: threading.Event) -> None:
        self.done = 0
        self.began = time.monotonic()
        self.bytes_per_second = bytes_per_second
        self.stopping = stopping
        #: set with the reason when this one copy must end (its destination went down)
        self.abandon: TransferFailed | None = None

    def __call__(self, count: int) -> None:
        if self.stopping.is_set():
            raise TransferStopped("the gateway is stopping")
        if self.abandon is not None:
            raise self.abandon
        self.done += count
        if self.bytes_per_second:
            ahead = self.done / self.bytes_per_second - (time.monotonic() - self.began)
            if ahead > 0:
                time.sleep(ahead)  # the operator's bandwidth cap (transfer_bytes_per_second)


class TransferService:
    def __init__(
        self, db: Database, registry: CenterRegistry, *, bytes_per_second: int | None = None, objects: ObjectStore | None = None
    ) -> None:
        self.db = db
        self.registry = registry
        #: the S3-compatible artifact store, when the gateway keeps its uploads in one
        self.objects = objects
        self.bytes_per_second = bytes_per_second
        self._stopping = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Copy again what a previous run left open (replicas); close interrupted stagings."""
        self._stopping.clear()
        async with self.db.transaction() as session:
            open_rows = await transfer_store.open_transfers(session)
            for row in open_rows:
                if row.job_id is not None:
                    row.state, row.failure_code = "FAILED", "INTERRUPTED"
                    row.failure_reason, row.finished_at = "the gateway stopped during staging; the job stages again", utcnow()
        for row in open_rows:
            if row.job_id is None:
                self._spawn(row.id)

    async def stop(self) -> None:
        self._stopping.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, transfer_id: int) -> None:
        task = asyncio.create_task(self._run_logged(transfer_id), name=f"transfer-{transfer_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_logged(self, transfer_id: int) -> None:
        try:
            await self.run(transfer_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("transfer %s failed unexpectedly", transfer_id)

    # ------------------------------------------------------------------ replicas

    async def replicate(self, viewer: Viewer, dataset_id: str, center_id: str) -> Requested:
        """Start copying a dataset to a center (the open transfer, when one is already copying it)."""
        dataset_key, center_key = int_key(dataset_id, "Dataset"), int_key(center_id, "ComputeCenter")
        center = self.registry.get(center_key) if center_key is not None else None
        async with self.db.read() as session:
            found = await dataset_store.datasets_by_ids(session, [dataset_key], viewer.scope) if dataset_key is not None else {}
            dataset = found.get(dataset_key or 0)
        if dataset is None:
            return _refused("no such dataset", "DATASET_NOT_FOUND", "datasetId")
        if center is None:
            return _refused("no such center", "CENTER_NOT_FOUND", "centerId")
        if center.data_root is None:
            return _refused(f"{center.name} keeps no data (it has no data root)", "CENTER_KEEPS_NO_DATA", "centerId")
        async with self.db.transaction() as session:
            replica = await transfer_store.replica_of(session, dataset.id, center.id)
            if replica is not None and replica.state == "VERIFIED":
                return _refused(f"{center.name} already holds a verified copy", "ALREADY_REPLICATED", "centerId")
            if replica is not None and replica.state == "COPYING":
                running = [t for t in await transfer_store.open_transfers(session) if t.dataset_id == dataset.id]
                running = [t for t in running if t.center_id == center.id and t.job_id is None]
                if running:
                    return Requested(transfer=running[0])
            source, refusal = await self._source(session, dataset, center)
            if refusal is not None:
                return Requested(errors=[refusal])
            refusal = await self._room_for(session, dataset, center)
            if refusal is not None:
                return Requested(errors=[refusal])
            assert center.data_root is not None
            destination = replica_path(center.data_root, dataset.id, dataset.name)
            transfer = _new_transfer(dataset, center, source, destination)
            session.add(transfer)
            if replica is None:
                session.add(DatasetReplicaRow(dataset_id=dataset.id, center_id=center.id, uri=transfer.destination_uri, state="COPYING"))
            else:  # a claimed, unverified copy is replaced by a real one
                replica.state, replica.uri, replica.verified_at = "COPYING", transfer.destination_uri, None
            await session.flush()
        self._spawn(transfer.id)
        return Requested(transfer=transfer)

    async def _source(self, session: AsyncSession, dataset: DatasetRow, center: Center) -> tuple[str, UserErrorData | None]:
        """Where to copy from: a verified replica this host can read, else the dataset's own URI."""
        for replica in await transfer_store.verified_replicas(session, dataset.id):
            path = path_of(replica.uri)
            if replica.center_id != center.id and path is not None and path.exists():
                return replica.uri, None
        if not readable_scheme(dataset.uri) and not self._uploaded_object(dataset):
            scheme = dataset.uri.partition(":")[0]
            return "", UserErrorData(
                f"the gateway cannot read {scheme}:// URIs (file, http and https it can)", "UNSUPPORTED_URI", ("datasetId",)
            )
        if dataset.checksum is None:
            return "", UserErrorData("the dataset has no checksum to verify a copy against", "CHECKSUM_REQUIRED", ("datasetId",))
        return dataset.uri, None

    def _uploaded_object(self, dataset: DatasetRow) -> bool:
        """An object of the artifact store uploaded as this dataset (a registered s3:// uri is never read:
        it could name another account's object)."""
        return self.objects is not None and dataset.stored_at is not None and self.objects.key_of(dataset.uri) is not None

    async def _room_for(self, session: AsyncSession, dataset: DatasetRow, center: Center) -> UserErrorData | None:
        size = dataset.size_bytes or 0
        free = await self.free_bytes(session, center)
        if free is not None and size > free:
            return UserErrorData(f"{center.name} has {free} bytes free; the dataset needs {size}", "INSUFFICIENT_STORAGE", ("centerId",))
        return await storage_refusal(session, dataset.owner_id, size)

    async def free_bytes(self, session: AsyncSession, center: Center) -> int | None:
        """What the center's data root can still take: its filesystem's free space, within ``storage_bytes``."""
        if center.data_root is None:
            return None
        existing = center.data_root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if center.storage_bytes is not None:
            used = await transfer_store.center_bytes(session, center.id)
            free = min(free, max(0, center.storage_bytes - used))
        return free

    # ------------------------------------------------------------------ the copy

    async def run(self, transfer_id: int, report: Report | None = None) -> TransferRow:
        """Copy one transfer now; returns it VERIFIED or FAILED (a stopping gateway leaves it open)."""
        async with self.db.transaction() as session:
            transfer = (await transfer_store.transfers_by_ids(session, [transfer_id]))[transfer_id]
            dataset = (await dataset_store.datasets_by_ids(session, [transfer.dataset_id]))[transfer.dataset_id]
            transfer.state, transfer.bytes_done, transfer.attempts = "COPYING", 0, transfer.attempts + 1
            transfer.updated_at = utcnow()
        destination = path_of(transfer.destination_uri)
        assert destination is not None
        center = self.registry.get(transfer.center_id)
        progress = _Progress(self.bytes_per_second, self._stopping)
        copying = asyncio.create_task(
            asyncio.to_thread(copy_verified, transfer.source_uri, destination, transfer.checksum, progress, self.objects),
            name=f"copy-{transfer_id}",
        )
        try:
            while not copying.done():
                await asyncio.wait({copying}, timeout=PROGRESS_INTERVAL_SECONDS)
                if not await self._record_progress(transfer, dataset, progress.done, report):
                    progress.abandon = TransferFailed("CANCELLED", "the job was cancelled during staging")
                if center is not None and center.health.state == "DOWN":
                    progress.abandon = TransferFailed("CENTER_UNAVAILABLE", f"{center.name} went down during the copy")
            measured = copying.result()
        except TransferStopped:
            return transfer  # left open: the next start copies it again
        except TransferFailed as failure:
            return await self._finish(transfer, failure)
        except asyncio.CancelledError:
            progress.abandon = TransferStopped()
            await asyncio.wait({copying})
            raise
        except OSError as error:
            return await self._finish(transfer, TransferFailed("COPY_FAILED", str(error)))
        return await self._finish(transfer, measured, report=report, dataset=dataset)

    async def _record_progress(self, transfer: TransferRow, dataset: DatasetRow, done: int, report: Report | None) -> bool:
        if done == transfer.bytes_done:
            return True
        transfer.bytes_done = done
        async with self.db.transaction() as session:
            await transfer_store.set_progress(session, transfer.id, bytes_done=done)
        return await report(transfer, dataset) if report is not None else True

    async def _finish(
        self, transfer: TransferRow, outcome: Measured | TransferFailed, *, report: Report | None = None, dataset: DatasetRow | None = None
    ) -> TransferRow:
        now = utcnow()
        async with self.db.transaction() as session:
            row = (await transfer_store.transfers_by_ids(session, [transfer.id]))[transfer.id]
            row.finished_at = row.updated_at = now
            if isinstance(outcome, Measured):
                row.state, row.bytes_done, row.bytes_total, row.checksum = (
                    "VERIFIED",
                    outcome.size_bytes,
                    outcome.size_bytes,
                    outcome.checksum,
                )
                if row.job_id is None:
                    replica = await transfer_store.replica_of(session, row.dataset_id, row.center_id)
                    if replica is not None:
                        replica.state, replica.verified_at = "VERIFIED", now
            else:
                row.state, row.failure_code, row.failure_reason = "FAILED", outcome.code, outcome.message
                if row.job_id is None:
                    await transfer_store.drop_replica(session, row.dataset_id, row.center_id)
        if report is not None and dataset is not None:
            await report(row, dataset)
        return row

    # ------------------------------------------------------------------ staging a job's inputs

    async def stage_inputs(self, job: JobRow, center: Center, area: JobArea, report: Report) -> TransferFailed | None:
        """Put each input at ``AICN_INPUT_DIR/<name>``: a link to the center's verified replica, else a verified copy."""
        async with self.db.read() as session:
            inputs = (await job_store.inputs_by_jobs(session, [job.id]))[job.id]
        for dataset in inputs:
            target = area.input_dir / safe_name(dataset.name)
            local = await self._local_replica(dataset, center)
            if local is not None:
                await asyncio.to_thread(_link, target, local)
                continue
            async with self.db.transaction() as session:
                source, refusal = await self._source(session, dataset, center)
                if refusal is None:
                    refusal = await self._room_for(session, dataset, center)
                if refusal is not None:
                    return TransferFailed(refusal.code, f"{dataset.name}: {refusal.message}")
                transfer = _new_transfer(dataset, center, source, target, job_id=job.id)
                session.add(transfer)
                await session.flush()
            await report(transfer, dataset)
            done = await self.run(transfer.id, report)
            if done.state != "VERIFIED":
                return TransferFailed(done.failure_code or "TRANSFER_STOPPED", f"{dataset.name}: {done.failure_reason or 'stopped'}")
        return None

    async def _local_replica(self, dataset: DatasetRow, center: Center) -> Path | None:
        async with self.db.read() as session:
            replica = await transfer_store.replica_of(session, dataset.id, center.id)
        path = path_of(replica.uri) if replica is not None and replica.state == "VERIFIED" else None
        return path if path is not None and path.exists() else None

    # ------------------------------------------------------------------ serving a transfer's source

    async def grant(self, transfer_id: int) -> str | None:
        """A bearer token that may fetch this one open transfer's source (``GET /transfers/{id}/source``),
        for a center or peer that pulls the copy itself; None when the transfer is not open. A new grant
        replaces the previous one; the token stops working when the transfer ends."""
        secret = "aicn_xfer_" + secrets.token_urlsafe(24)
        async with self.db.transaction() as session:
            row = (await transfer_store.transfers_by_ids(session, [transfer_id])).get(transfer_id)
            if row is None or row.state not in transfer_store.OPEN_STATES:
                return None
            row.token_hash = hashlib.sha256(secret.encode()).hexdigest()
        return secret

    async def granted_source(self, transfer_id: int, secret: str) -> str | None:
        """The source uri of an open transfer, when ``secret`` is its grant; None otherwise (answered as missing)."""
        async with self.db.read() as session:
            row = (await transfer_store.transfers_by_ids(session, [transfer_id])).get(transfer_id)
        if row is None or row.token_hash is None or row.state not in transfer_store.OPEN_STATES:
            return None
        if not hmac.compare_digest(row.token_hash, hashlib.sha256(secret.encode()).hexdigest()):
            return None
        return row.source_uri

    # ------------------------------------------------------------------ reads

    async def by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, TransferRow]:
        async with self.db.read() as session:
            return await transfer_store.transfers_by_ids(session, ids, scope)


def _new_transfer(dataset: DatasetRow, center: Center, source: str, destination: Path, job_id: int | None = None) -> TransferRow:
    return TransferRow(
        owner_id=dataset.owner_id,
        dataset_id=dataset.id,
        center_id=center.id,
        job_id=job_id,
        state="QUEUED",
        source_uri=source,
        destination_uri=file_uri(destination),
        bytes_total=dataset.size_bytes,
        bytes_done=0,
        checksum=dataset.checksum,
        attempts=0,
    )


def _refused(message: str, code: str, field_name: str) -> Requested:
    return Requested(errors=[UserErrorData(message, code, (field_name,))])


def _link(target: Path, replica: Path) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(replica, target_is_directory=replica.is_dir())
