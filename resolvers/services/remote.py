"""Services on a PEER center: deployed at the peer gateway through its own graph, followed there.

Each controller round, per PEER service: send the model to the peer and deploy it there once,
then follow the peer's service and take its state and ready count. The model is streamed to the
peer's ``POST /models/upload`` in constant memory (a folder as the tar a download of it is, with
the folder's checksum, which the peer checks again over what it unpacked); its name and version
come from this gateway's model and its checksum, so the same files sent again (a retry after a
crash or a lost answer) find the model they made, never a second one. The service's
idempotency key finds the service it made in the same way.

The peer's service is followed like a delegated job: a ``serviceEvents`` subscription on the
peer's one live link (resumed with ``after`` when it drops, so a peer restart loses no event).
Each event wakes the controller, and that round reads the peer's service once and applies it
(state, ready and desired replicas, the replicas running); a round with no event reads nothing.
It reads anyway while the link does not carry the subscription (the fallback, as for jobs) and
every ``poll_interval_seconds`` of the PEER center (at least ``RESYNC_SECONDS``).

Every replica the peer runs is metered here exactly once whatever its life: the running ones
are taken from the service's ``replicaJobs`` as they are read, and every one that ran from the
peer's own usage records of the service (read back to the newest one already taken), so a
replica that started and ended between two reads is not missed. Each replica the peer runs
(a job of the origin's account there) becomes a job of this gateway on the PEER center, made once
(its idempotency key is the peer job's id): the jobs' machinery follows it over the peer link and
meters it at its end at this gateway's quote (the peer's price plus the markup), and
``peerSettlement`` sets it against the peer's own charge like any delegated job. Requests go to
the peer's ``POST /services/{remoteId}/invoke`` with the peer token, never shown to clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from connectors.errors import ConnectorError, SubmissionRejected
from connectors.peer.connector import PeerConnector
from connectors.peer.services import RemoteReplica, RemoteService, UsagePage
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.errors import CenterFault
from resolvers.data.digest import measure
from resolvers.data.downloads import Download, plan
from resolvers.jobs.ledger import EventRecord
from resolvers.jobs.service import JobService
from resolvers.jobs.states import JobEventKind, JobKind, JobState
from resolvers.services.ledger import ServiceChange, ServiceLedger
from resolvers.services.pool import ServicePool
from resolvers.services.proxy import Invocation
from resolvers.services.serving import builtin_command
from resolvers.services.states import ENDED_STATES, ServiceEventKind, ServiceState
from store import datasets as dataset_store
from store import jobs as job_store
from store.db import Database
from store.service_tables import ServiceRow
from store.tables import JobRow, ModelRow
from store.types import utcnow

log = logging.getLogger(__name__)

#: the peer's service states this gateway's service takes as they are
FOLLOWED = {ServiceState.DEPLOYING, ServiceState.READY, ServiceState.SCALING, ServiceState.DEGRADED}
#: a service followed live is read at least this seldom anyway (and at the center's poll interval if longer)
RESYNC_SECONDS = 5.0


def service_key(gateway_id: str, service_id: int) -> str:
    """The idempotency key of this gateway's service at the peer: the same for every retry."""
    return f"aicn-service-{gateway_id}-{service_id}"


async def _streamed(download: Download) -> AsyncIterator[bytes]:
    """The download's bytes, read a chunk at a time in a worker thread (constant memory)."""
    chunks = download.chunks()
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


class RemoteServices:
    def __init__(
        self, db: Database, registry: CenterRegistry, jobs: JobService, ledger: ServiceLedger, wake: Callable[[], None] = lambda: None
    ) -> None:
        self.db = db
        self.registry = registry
        self.jobs = jobs
        self.ledger = ledger
        self.wake = wake
        #: when each followed service was last read at the peer (monotonic)
        self._read_at: dict[int, float] = {}
        #: the newest of the peer's usage records of each service already taken (its cursor)
        self._usage_seen: dict[int, str] = {}
        #: the model sent for a service not yet deployed at the peer (a deploy retried does not send it again)
        self._sent: dict[int, tuple[str, str]] = {}

    def peer_of(self, service: ServiceRow) -> tuple[Center, PeerConnector] | None:
        center = self.registry.get(service.center_id) if service.center_id is not None else None
        if center is None or not isinstance(center.connector, PeerConnector):
            return None
        return center, center.connector

    # ------------------------------------------------------------------ one round

    async def reconcile(self, service: ServiceRow, mirrors: Sequence[JobRow], pool: ServicePool) -> None:
        found = self.peer_of(service)
        if found is None:
            return
        center, peer = found
        try:
            if service.state == ServiceState.STOPPING:
                await self._stopping(service, center, peer, mirrors, pool)
                return
            if service.remote_id is None:
                await self._deploy(service, center, peer)
                return
            remote_id = service.remote_id
            if not await self._due(service, center, peer, remote_id):
                return  # nothing happened at the peer since the last read
            peer.service_view(remote_id).changed = False  # an event during the read marks it again
            try:
                remote = await self.registry.call(center, lambda _: peer.services.read(remote_id))
                await self._mirror(service, center, peer, remote, mirrors)
            except BaseException:
                peer.service_view(remote_id).changed = True
                raise
            self._read_at[service.id] = time.monotonic()
        except (CenterFault, ConnectorError) as fault:
            log.info("service %s at peer %s: %s (tried again next round)", service.id, center.name, fault)
            return
        pool.remote_ready = remote.ready
        await self._follow(service, remote, pool)

    async def _due(self, service: ServiceRow, center: Center, peer: PeerConnector, remote_id: str) -> bool:
        """Whether this round reads the peer's service: an event came, the link does not carry it, or the resync is due."""
        peer.on_service_activity = self.wake
        view = await peer.follow_service(remote_id)
        resync = max(center.poll_interval_seconds, RESYNC_SECONDS)
        last = self._read_at.get(service.id)
        return view.changed or not peer.following_service(remote_id) or last is None or time.monotonic() - last >= resync

    async def _deploy(self, service: ServiceRow, center: Center, peer: PeerConnector) -> None:
        async with self.db.read() as session:
            model = (await dataset_store.models_by_ids(session, [service.model_id])).get(service.model_id)
        via = (self.jobs.gateway_id,)
        try:
            if model is None or service.model_dir is None:
                raise ValueError("the model is gone")
            model_id, checksum = self._sent.get(service.id) or await self._send(model, Path(service.model_dir), peer, via)
            self._sent[service.id] = (model_id, checksum)
            remote_id = await self.registry.call(center, lambda _: peer.services.deploy(self._deploy_fields(service, model_id), via=via))
        except (ValueError, OSError, SubmissionRejected) as refusal:
            self._sent.pop(service.id, None)
            await self._fail(service, f"DEPLOY_REFUSED: the peer did not take the service: {_message(refusal)}")
            return

        def deployed(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.remote_id is None:
                change.columns["remote_id"] = remote_id
                change.event(ServiceEventKind.ARTIFACT, f"sent the model to {center.name}: {checksum} verified there")
                change.event(ServiceEventKind.PLACEMENT, f"deployed at the peer gateway {center.name}")
            return change

        await self.ledger.apply(service.id, deployed)
        self._sent.pop(service.id, None)

    async def _send(self, model: ModelRow, source: Path, peer: PeerConnector, via: tuple[str, ...]) -> tuple[str, str]:
        """(the model's id at the peer, its checksum): the files streamed to the peer's upload route.

        Not under the center's call deadline (a model may take minutes): the transfer's own
        timeouts bound each read and write instead."""
        measured = await measure(source)  # each file read once per version: its digest is remembered
        if model.checksum is not None and model.checksum.partition(":")[0] == "sha256" and model.checksum != measured.checksum:
            raise ValueError(f"the model's files have checksum {measured.checksum}, the model says {model.checksum}")
        download = await asyncio.to_thread(plan, source, "model")
        query = {
            # the peer learns an opaque name, never the user's
            "name": f"aicn-model-{self.jobs.gateway_id[:12]}-{model.id}",
            "version": measured.checksum.split(":", 1)[1][:16],
        }
        if model.framework:
            query["framework"] = model.framework
        model_id = await peer.services.upload_model(
            query, checksum=measured.checksum, length=download.length, body=_streamed(download), folder=source.is_dir(), via=via
        )
        return model_id, measured.checksum

    def _deploy_fields(self, service: ServiceRow, model_id: str) -> dict[str, Any]:
        request = service.request.as_asked()
        wanted = {
            "maxDurationMinutes": request.max_duration_minutes,
            "accelerator": request.accelerator,
            "devices": request.devices,
            "standardUnits": request.standard_units,
            "cpus": request.cpus,
            "memoryGb": request.memory_gb,
        }
        fields: dict[str, Any] = {
            "modelId": model_id,
            "name": f"aicn-service-{service.id}",
            "request": {key: value for key, value in wanted.items() if value is not None},
            "scale": {"min": service.min_replicas, "max": service.max_replicas, "targetRequestsPerReplica": service.target_per_replica},
            "idempotent": service.idempotent,
            "deadlineSeconds": service.deadline_seconds,
            "idempotencyKey": service_key(self.jobs.gateway_id, service.id),
        }
        if service.command != builtin_command():  # the built-in runner is the peer's own
            fields["command"] = list(service.command)
        return fields

    async def _follow(self, service: ServiceRow, remote: RemoteService, pool: ServicePool) -> None:
        def follow(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.state not in FOLLOWED:
                return change
            if remote.ready != current.ready_replicas:
                change.columns["ready_replicas"] = remote.ready
            if remote.state in (ServiceState.STOPPED, ServiceState.FAILED, ServiceState.STOPPING):
                reason = remote.failure_reason or f"the service is {remote.state} at the peer"
                change.columns.update(failure_reason=f"AT_PEER: {reason}", desired_replicas=0)
                change.state(ServiceState.STOPPING, "the service ended at the peer; stopping", remote.ready)
                return change
            if remote.desired != current.desired_replicas:
                change.columns.update(desired_replicas=remote.desired, scaled_at=utcnow())
                change.event(ServiceEventKind.SCALE, f"the peer scaled to {remote.desired} replicas", remote.ready)
            target = ServiceState(remote.state)
            if target != current.state:
                change.state(target, f"{remote.ready} of {remote.desired} replicas ready at the peer", remote.ready)
            return change

        await self.ledger.apply(service.id, follow)
        pool.changed.set()

    async def _stopping(
        self, service: ServiceRow, center: Center, peer: PeerConnector, mirrors: Sequence[JobRow], pool: ServicePool
    ) -> None:
        pool.remote_ready = 0
        if service.remote_id is not None:
            remote_id = service.remote_id
            await self.registry.call(center, lambda _: peer.services.stop(remote_id))
            remote = await self.registry.call(center, lambda _: peer.services.read(remote_id))
            await self._mirror(service, center, peer, remote, mirrors)
            if remote.state not in ENDED_STATES:
                return
        if mirrors:
            return  # their ends at the peer come over the link, and are metered; then the service is stopped

        def stopped(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            change.finish_stopping(current, "stopped at the peer")
            return change

        await self.ledger.apply(service.id, stopped)
        pool.changed.set()
        if service.remote_id is not None:
            peer.forget_service(service.remote_id)
        self._read_at.pop(service.id, None)
        self._usage_seen.pop(service.id, None)

    async def _fail(self, service: ServiceRow, reason: str) -> None:
        def fail(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.state not in ENDED_STATES and current.state != ServiceState.STOPPING:
                change.columns.update(failure_reason=reason, desired_replicas=0)
                change.state(ServiceState.STOPPING, "the service failed; stopping", 0)
            return change

        await self.ledger.apply(service.id, fail)

    # ------------------------------------------------------------------ the peer's replicas, metered here

    async def _mirror(
        self, service: ServiceRow, center: Center, peer: PeerConnector, remote: RemoteService, mirrors: Sequence[JobRow]
    ) -> None:
        known = {job.external_id for job in mirrors}
        adopted = False
        for replica in remote.replicas:
            if replica.external_id in known or replica.state in ("SUCCEEDED", "FAILED", "CANCELLED", "LOST", "TIME_LIMIT"):
                continue
            # the replica's own compute unit's price, else the peer's price for the service's devices
            price = replica.price if replica.price is not None else remote.price
            if price is None:
                continue  # not priced at the peer yet: adopted in a later round, at the price it runs at
            adopted |= await self._adopt(service, center, replica, price + peer.markup)
        adopted |= await self._metered_there(service, center, peer, remote.remote_id, known)
        if adopted and peer.on_activity is not None:
            peer.on_activity()  # the jobs' reconciler follows (and meters) the new ones now

    async def _metered_there(
        self, service: ServiceRow, center: Center, peer: PeerConnector, remote_id: str, known: set[str | None]
    ) -> bool:
        """Every replica the peer metered since the newest usage record taken: adopted here (once), so a
        replica too short-lived to be seen running is metered here too. True when one was new."""
        seen = self._usage_seen.get(service.id)
        newest: str | None = None
        adopted = False
        after: str | None = None
        while True:
            page = await self.registry.call(center, partial(_usage, peer, remote_id, after))
            for cursor, replica in page.records:
                if cursor == seen:
                    page = replace(page, next_cursor=None)
                    break
                newest = newest or cursor
                if replica.external_id not in known and replica.price is not None:
                    adopted |= await self._adopt(service, center, replica, replica.price + peer.markup)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        if newest is not None:
            self._usage_seen[service.id] = newest
        return adopted

    async def _adopt(self, service: ServiceRow, center: Center, replica: RemoteReplica, price: Decimal) -> bool:
        """This gateway's job for one replica at the peer, made once (True: made now); followed and metered like a delegated job."""
        billing = self.jobs.billing
        accelerator = replica.accelerator or service.request.accelerator or "cpu-core"
        request = service.request.as_asked().placed(accelerator, replica.devices)
        terms: dict[str, Any] = {}
        if billing is not None:
            quote = billing.quote(center, accelerator, replica.devices, request.max_duration_minutes, price)
            terms = quote.job_columns()
        key = f"peer-replica:{center.id}:{replica.external_id}"
        try:
            async with self.db.transaction() as session:
                if await job_store.find_by_idempotency_key(session, service.owner_id, key) is not None:
                    return False
                job = JobRow(
                    owner_id=service.owner_id,
                    reference=f"aicn-{secrets.token_hex(6)}",
                    name=f"{service.name} replica at {center.name}",
                    kind=JobKind.INFERENCE,
                    state=JobState.QUEUED,
                    center_id=center.id,
                    external_id=replica.external_id,
                    request=request,
                    command=list(service.command),
                    environment=None,
                    idempotency_key=key,
                    progress_count=0,
                    last_seq=0,
                    service_id=service.id,
                    **terms,
                )
                session.add(job)
                await session.flush()
                event = job_store.append_event(
                    session, job, JobEventKind.STATE, state=JobState.QUEUED, message=f"a replica of the service at {center.name}"
                )
                await session.flush()
                record = EventRecord.from_row(event, job.owner_id)
        except IntegrityError:  # another round (or gateway) made it first
            return False
        await self.jobs.ledger.announce([record])
        return True

    # ------------------------------------------------------------------ requests

    async def invoke(self, service: ServiceRow, body: bytes) -> Invocation:
        found = self.peer_of(service)
        if found is None or service.remote_id is None:
            return Invocation.refused("the service is not deployed at the peer yet", "SERVICE_NOT_READY")
        center, peer = found
        try:
            answer = await peer.services.invoke(service.remote_id, body, service.deadline_seconds + 1.0, via=peer.via())
        except httpx.TimeoutException:
            return Invocation.refused(
                f"the peer did not answer within the service's deadline ({service.deadline_seconds:g} s)", "SERVICE_TIMEOUT"
            )
        except httpx.HTTPError:
            return Invocation.refused(f"the peer gateway {center.name} could not be reached", "REPLICA_FAILED")
        if answer.code is None and answer.status < 300:
            try:
                json.loads(answer.body)
            except ValueError:
                return Invocation.refused("the peer answered without JSON", "BACKEND_ERROR", 502)
            return Invocation(raw=answer.body, status=answer.status)
        code = answer.code if answer.code in PASSED_ON else "BACKEND_ERROR"
        return Invocation.refused(answer.message or f"the peer answered HTTP {answer.status}", code, answer.status)

    async def scale(self, service: ServiceRow, scale: dict[str, Any]) -> None:
        found = self.peer_of(service)
        if found is None or service.remote_id is None:
            return  # not deployed there yet: the deployment carries the scale
        center, peer = found
        remote_id = service.remote_id
        await self.registry.call(center, lambda _: peer.services.scale(remote_id, scale))


#: the peer's refusals passed on as they are (its own service's codes); anything else is BACKEND_ERROR
PASSED_ON = frozenset({"SERVICE_NOT_READY", "BACKEND_ERROR", "SERVICE_TIMEOUT", "REPLICA_FAILED", "PAYLOAD_TOO_LARGE", "INVALID_INPUT"})


async def _usage(peer: PeerConnector, remote_id: str, after: str | None, _: object) -> UsagePage:
    return await peer.services.usage(remote_id, after)


def _message(error: BaseException) -> str:
    return str(getattr(error, "message", None) or error)
