"""Services on a PEER center: deployed at the peer gateway through its own graph, followed there.

Each controller round, per PEER service: push the model's files to the peer and deploy it there
once (idempotent: the model's files find the model they made, the service's key finds the service),
then read the peer's service and take its state and ready count. Each replica the peer runs
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
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from connectors.errors import ConnectorError, SubmissionRejected
from connectors.peer.connector import PeerConnector
from connectors.peer.services import RemoteReplica, RemoteService
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.errors import CenterFault
from resolvers.data.digest import regular_files
from resolvers.data.pushed import MAX_PUSHED_BYTES, tree_checksum
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


def service_key(gateway_id: str, service_id: int) -> str:
    """The idempotency key of this gateway's service at the peer: the same for every retry."""
    return f"aicn-service-{gateway_id}-{service_id}"


def _files(source: Path) -> list[tuple[str, bytes]]:
    if source.is_dir():
        pairs = list(regular_files(source))
    else:
        pairs = [(source.name, source)]
    total = sum(path.stat().st_size for _, path in pairs)
    if total > MAX_PUSHED_BYTES:
        raise ValueError(f"the model is {total} bytes; a peer takes at most {MAX_PUSHED_BYTES} this way")
    return [(name, path.read_bytes()) for name, path in pairs]


class RemoteServices:
    def __init__(self, db: Database, registry: CenterRegistry, jobs: JobService, ledger: ServiceLedger) -> None:
        self.db = db
        self.registry = registry
        self.jobs = jobs
        self.ledger = ledger

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
            remote = await self.registry.call(center, lambda _: peer.services.read(service.remote_id or ""))
        except (CenterFault, ConnectorError) as fault:
            log.info("service %s at peer %s: %s (tried again next round)", service.id, center.name, fault)
            return
        pool.remote_ready = remote.ready
        await self._mirror(service, center, peer, remote, mirrors)
        await self._follow(service, remote, pool)

    async def _deploy(self, service: ServiceRow, center: Center, peer: PeerConnector) -> None:
        async with self.db.read() as session:
            model = (await dataset_store.models_by_ids(session, [service.model_id])).get(service.model_id)
        via = (self.jobs.gateway_id,)
        try:
            if model is None or service.model_dir is None:
                raise ValueError("the model is gone")
            fields = await asyncio.to_thread(self._model_fields, model, Path(service.model_dir))
            model_id = await self.registry.call(center, lambda _: peer.services.push_model(fields, via=via))
            remote_id = await self.registry.call(center, lambda _: peer.services.deploy(self._deploy_fields(service, model_id), via=via))
        except (ValueError, OSError, SubmissionRejected) as refusal:
            await self._fail(service, f"DEPLOY_REFUSED: the peer did not take the service: {_message(refusal)}")
            return
        checksum = fields["artifact"]["checksum"]

        def deployed(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.remote_id is None:
                change.columns["remote_id"] = remote_id
                change.event(ServiceEventKind.ARTIFACT, f"sent the model to {center.name}: {checksum} verified there")
                change.event(ServiceEventKind.PLACEMENT, f"deployed at the peer gateway {center.name}")
            return change

        await self.ledger.apply(service.id, deployed)

    def _model_fields(self, model: ModelRow, source: Path) -> dict[str, Any]:
        import base64

        files = _files(source)
        measured = tree_checksum(files)
        if source.is_dir() and model.checksum is not None and model.checksum.startswith("sha256:") and model.checksum != measured.checksum:
            raise ValueError(f"the model's files have checksum {measured.checksum}, the model says {model.checksum}")
        return {
            # the peer learns an opaque name, never the user's
            "name": f"aicn-model-{self.jobs.gateway_id[:12]}-{model.id}",
            "version": measured.checksum.split(":", 1)[1][:16],
            "uri": "aicn://pushed",
            "framework": model.framework,
            "servingCommand": model.serving_command,
            "artifact": {
                "files": [{"path": name, "contentBase64": base64.b64encode(data).decode()} for name, data in files],
                "checksum": measured.checksum,
            },
        }

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
        for replica in remote.replicas:
            if replica.external_id in known or replica.state in ("SUCCEEDED", "FAILED", "CANCELLED", "LOST", "TIME_LIMIT"):
                continue
            # the replica's own compute unit's price, else the peer's price for the service's devices
            price = replica.price if replica.price is not None else remote.price
            if price is None:
                continue  # not priced at the peer yet: adopted in a later round, at the price it runs at
            await self._adopt(service, center, replica, price + peer.markup)

    async def _adopt(self, service: ServiceRow, center: Center, replica: RemoteReplica, price: Decimal) -> None:
        """This gateway's job for one replica at the peer, made once; followed and metered like a delegated job."""
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
                    return
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
            return
        await self.jobs.ledger.announce([record])

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


def _message(error: BaseException) -> str:
    return str(getattr(error, "message", None) or error)
