"""The service controller: one loop that keeps every service's replicas as asked.

Each round, per active service: notice replicas that ended (a replica that never became
READY fails a deploying service, with its last log lines), health-check the running ones
(READY once they answer; replaced after failed checks), decide the replica count from
in-flight requests per replica (up after ``scale_up_after``, down after the cool-down, to
zero when ``min`` is 0), start or retire replicas to match, and write the service's state.
Replicas are jobs: they are placed on the service's center, held for, reconciled and metered
by the jobs' machinery, so they survive a gateway restart and are billed once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from connectors.errors import ConnectorError
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import CenterRegistry
from resolvers.common.background import Alarm, stop_task
from resolvers.common.errors import CenterFault
from resolvers.common.ids import to_global_id
from resolvers.jobs.service import JobService, SubmitRequest
from resolvers.jobs.states import JobKind, JobState
from resolvers.services.artifacts import ArtifactMismatch, copy_verified, destination
from resolvers.services.ledger import ServiceChange, ServiceLedger
from resolvers.services.policy import ServingPolicy
from resolvers.services.pool import Replica, ServicePool
from resolvers.services.remote import RemoteServices
from resolvers.services.serving import MODEL_DIR, PORT, fill, free_port
from resolvers.services.states import ENDED_STATES, ServiceEventKind, ServiceState
from resolvers.services.tally import Tally
from resolvers.services.tokens import TokenMeter
from store import datasets as dataset_store
from store import jobs as job_store
from store import services as service_store
from store.db import Database
from store.service_tables import ServiceRow
from store.tables import JobRow
from store.types import utcnow

log = logging.getLogger(__name__)

LOG_LINES_IN_FAILURE = 20
PROBE_TIMEOUT_SECONDS = 2.0
#: how long a controller with nothing to do waits unless woken: the safety net for a lost wake
IDLE_ROUND_SECONDS = 15.0
#: the bus channel that tells the replica running the services that one changed on another replica
SERVICES_CHANGED = "services:changed"


@dataclass
class _Round:
    """What one round decided for one service, written in one transaction at its end."""

    notes: list[tuple[ServiceEventKind, str]] = field(default_factory=list)
    failure: str | None = None
    desired: int | None = None
    model_dir: str | None = None

    def note(self, kind: ServiceEventKind, message: str) -> None:
        self.notes.append((kind, message))


def service_key(service: ServiceRow) -> str:
    """The service's name on a center that keeps one thing per service (a Ray Serve application):
    its id and when it was made, so that two gateways' (or databases') service 1 never meet."""
    return f"{service.id}-{int(service.created_at.timestamp() * 1_000_000):x}"


def ordinal_of(job: JobRow) -> int:
    return int((job.environment or {}).get("AICN_SERVICE_REPLICA") or 0)


class ServiceController:
    def __init__(
        self, db: Database, registry: CenterRegistry, jobs: JobService, ledger: ServiceLedger, policy: ServingPolicy, counts_folder: Path
    ) -> None:
        self.db = db
        self.registry = registry
        self.jobs = jobs
        self.ledger = ledger
        self.policy = policy
        self.pools: dict[int, ServicePool] = {}
        #: the active services as of the last round (or the last change made here): invoke reads no row
        self.active: dict[int, ServiceRow] = {}
        self._alarm = Alarm()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        #: whether the last round found nothing to do (no service, no count, no tokens): the next waits for a wake
        self.idle = False
        self._announcing: set[asyncio.Task[int]] = set()
        #: whether this replica runs the services now (its lease); a lone gateway always does
        self.leading: Callable[[], bool] = lambda: True
        self._probe = httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS)
        #: the services on PEER centers, deployed and followed at the peer gateway
        self.remote = RemoteServices(db, registry, jobs, ledger, wake=self.wake)
        #: bills priced services' tokens each round (None: tokens are only counted)
        self.tokens: TokenMeter | None = None
        #: every request counted before its answer goes out
        self.tally = Tally(db, counts_folder)
        self.tally.on_count = self._counted

    def pool(self, service_id: int) -> ServicePool:
        pool = self.pools.get(service_id)
        if pool is None:
            pool = self.pools[service_id] = ServicePool(service_id)
        return pool

    def ready_replicas(self, service: ServiceRow) -> int:
        """The service's replicas answering requests: from the pool on the replica that runs the
        services (fresher than the row by up to a round), else as the controller last wrote them."""
        if service.state in ENDED_STATES:
            return 0
        pool = self.pools.get(service.id) if self.leading() else None
        if pool is None:
            return service.ready_replicas
        return pool.remote_ready if pool.remote_ready is not None else len(pool.ready)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="service-controller")
        self._listener = asyncio.create_task(self._wake_on_changes(), name="service-changes")

    async def stop(self) -> None:
        await stop_task(self._listener)
        await stop_task(self._task)
        self._task = self._listener = None
        await self.tally.close()
        if self.tokens is not None:
            await self.tokens.bill_due()
        await self._probe.aclose()

    def wake(self) -> None:
        """Look at the services now: here, and on the replica that runs them when that is another."""
        self._alarm.ring()
        if not self.leading():
            task = asyncio.get_running_loop().create_task(self.ledger.bus.publish(SERVICES_CHANGED, {}))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    def _counted(self) -> None:
        if self.idle:  # an idle controller folds a request counted here at once, not at its safety round
            self._alarm.ring()

    async def _wake_on_changes(self) -> None:
        async with self.ledger.bus.subscribe(SERVICES_CHANGED) as changes:
            while True:
                await changes.get()
                if self.leading():
                    self._alarm.ring()

    async def _run(self) -> None:
        while True:
            busy = True
            try:
                if self.leading():
                    busy = await self.tick_once()
                else:  # another replica runs the services: this one only records the requests it proxied
                    busy = await self.flush_counts()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the service controller's round failed")
            # with nothing to do a round costs statements for nothing: what could change wakes the loop instead
            # (a change here or on another replica, a counted request, this replica taking the services' lease)
            self.idle = not busy
            await self._alarm.sleep(self.policy.tick_seconds if busy else IDLE_ROUND_SECONDS)
            self.idle = False

    async def flush_counts(self) -> bool:
        """Fold the requests (and tokens) counted in the journals into the services' totals; whether there were any."""
        try:
            return await self.tally.fold()
        except Exception:  # the counts stay in the journals: the next round folds them
            log.exception("folding the services' request counts failed")
            return True

    async def tick_once(self) -> bool:
        """One round over every active service; whether there was anything to do."""
        async with self.db.read() as session:
            services = await service_store.active_services(session)
            live = await service_store.live_replicas(session, [service.id for service in services])
        self.active = {service.id: service for service in services}
        await asyncio.gather(*(self._guarded(service, live[service.id]) for service in services))
        folded = await self.flush_counts()
        billed = await self.tokens.bill_due() if self.tokens is not None else False
        for service_id in set(self.pools) - {service.id for service in services}:
            pool = self.pools[service_id]
            if not pool.in_flight:
                del self.pools[service_id]
        return bool(services) or bool(self.pools) or folded or billed

    async def _guarded(self, service: ServiceRow, replicas: list[JobRow]) -> None:
        try:
            await self.reconcile(service, replicas)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciling service %s failed", service.id)

    # ------------------------------------------------------------------ one service

    async def reconcile(self, service: ServiceRow, replicas: Sequence[JobRow]) -> None:
        pool = self.pool(service.id)
        if self.remote.peer_of(service) is not None:
            await self.remote.reconcile(service, replicas, pool)
            return
        alive = {job.id: job for job in replicas}
        round_ = _Round()
        await self._notice_ended(service, pool, alive, round_)
        pool.known.update(alive)
        if service.state == ServiceState.STOPPING:
            await self._stop_all(service, pool, alive, round_)
            return
        if round_.failure is None and not alive:
            await self._bring_artifact(service, round_)
        if round_.failure is None:
            await self._check_health(service, pool, alive, round_)
            desired = self._autoscale(service, pool, round_)
            await self._match(service, pool, alive, desired, round_)
            round_.desired = desired
        else:
            await self._retire(pool, [job for job in alive.values() if job.state != JobState.CANCELLING])
        await self._write(service, pool, round_)

    async def _notice_ended(self, service: ServiceRow, pool: ServicePool, alive: dict[int, JobRow], round_: _Round) -> None:
        ended_ids = pool.known - alive.keys()
        if not ended_ids:
            return
        async with self.db.read() as session:
            ended = await job_store.jobs_by_ids(session, ended_ids)
        for job_id in sorted(ended_ids):
            pool.known.discard(job_id)
            pool.drop(job_id)
            pool.addresses.pop(job_id, None)
            job = ended.get(job_id)
            if job is None:
                continue
            number = ordinal_of(job)
            why = job.failure_reason or str(job.state)
            if job_id in pool.retired:
                pool.retired.discard(job_id)
                round_.note(ServiceEventKind.REPLICA, f"replica {number} stopped")
            elif job_id in pool.served:
                pool.lost = True
                round_.note(ServiceEventKind.REPLICA, f"replica {number} ended ({why}); replacing it")
            else:
                pool.failures_in_a_row += 1
                tail = (await self._tail(job)).strip()
                detail = f"replica {number} ended before it was ready ({why})" + (f"; its last lines:\n{tail}" if tail else "")
                round_.note(ServiceEventKind.REPLICA, detail)
                if service.state == ServiceState.DEPLOYING or pool.failures_in_a_row >= self.policy.failures_to_fail:
                    round_.failure = f"REPLICA_FAILED: {detail}"

    async def _bring_artifact(self, service: ServiceRow, round_: _Round) -> None:
        """Before a center that cannot read the gateway's files starts a replica: the verified copy."""
        center = self.registry.get(service.center_id) if service.center_id is not None else None
        if center is None or center.reads_gateway_files or center.data_root is None or service.model_dir is None:
            return
        source = Path(service.model_dir)
        if source.is_relative_to(center.data_root):
            return  # already there (copied before, or made there)
        async with self.db.read() as session:
            model = (await dataset_store.models_by_ids(session, [service.model_id])).get(service.model_id)
        target = destination(center.data_root, service.id, source)
        try:
            copied = await copy_verified(source, target, model.checksum if model is not None else None)
        except (ArtifactMismatch, OSError, ValueError) as error:
            round_.note(ServiceEventKind.ARTIFACT, f"copying the model to {center.name} failed: {error}")
            round_.failure = f"ARTIFACT_COPY_FAILED: {error}"
            return
        service.model_dir = round_.model_dir = str(copied.path)
        round_.note(ServiceEventKind.ARTIFACT, f"copied the model to {center.name}: {copied.size_bytes} bytes, {copied.checksum} verified")

    async def _tail(self, job: JobRow) -> str:
        try:
            return await self.jobs.logs(job, LOG_LINES_IN_FAILURE) or ""
        except (CenterFault, ConnectorError):
            return ""

    async def _stop_all(self, service: ServiceRow, pool: ServicePool, alive: dict[int, JobRow], round_: _Round) -> None:
        for replica in list(pool.ready.values()):
            pool.drop(replica.job_id)
        await self._retire(pool, [job for job in alive.values() if job.state != JobState.CANCELLING])
        if alive:
            await self._write(service, pool, round_)
            return

        def stopped(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            for kind, message in round_.notes:
                change.event(kind, message, 0)
            change.finish_stopping(current, "every replica has stopped")
            return change

        await self.ledger.apply(service.id, stopped)
        pool.changed.set()

    async def _retire(self, pool: ServicePool, jobs: Sequence[JobRow]) -> None:
        for job in jobs:
            pool.retired.add(job.id)
            pool.drop(job.id)
            await self.jobs.cancel(Viewer(account_id=job.owner_id), to_global_id("Job", job.id))

    async def _address(self, pool: ServicePool, job: JobRow) -> str | None:
        known = pool.addresses.get(job.id)
        if known is not None:
            return known
        center = self.registry.get(job.center_id) if job.center_id is not None else None
        port = (job.environment or {}).get("AICN_SERVICE_PORT")
        if center is None or job.external_id is None or not port:
            return None
        external_id = job.external_id
        try:
            url = await self.registry.call(center, lambda connector: connector.server_url(external_id, port))
        except (CenterFault, ConnectorError):
            return None
        pool.addresses[job.id] = url
        return url

    async def _answers(self, url: str) -> bool:
        try:
            response = await self._probe.get(url + "/health")
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def _check_health(self, service: ServiceRow, pool: ServicePool, alive: dict[int, JobRow], round_: _Round) -> None:
        now = time.monotonic()

        async def check(job: JobRow) -> None:
            replica = pool.ready.get(job.id)
            if replica is None:
                url = await self._address(pool, job)
                if url is not None and await self._answers(url):
                    pool.add(Replica(job.id, url, ordinal_of(job), checked_at=now))
                    round_.note(ServiceEventKind.REPLICA, f"replica {ordinal_of(job)} is ready")
                elif job.started_at is not None and (utcnow() - job.started_at).total_seconds() > self.policy.startup_seconds:
                    round_.note(
                        ServiceEventKind.REPLICA,
                        f"replica {ordinal_of(job)} did not answer within {self.policy.startup_seconds:g} s; replacing it",
                    )
                    await self._retire(pool, [job])
                return
            if now - replica.checked_at < self.policy.health_interval_seconds:
                return
            replica.checked_at = now
            if await self._answers(replica.url):
                replica.failed_checks = 0
                return
            replica.failed_checks += 1
            if replica.failed_checks >= self.policy.health_failures:
                pool.lost = True
                round_.note(
                    ServiceEventKind.REPLICA,
                    f"replica {replica.ordinal} failed {replica.failed_checks} health checks in a row; replacing it",
                )
                await self._retire(pool, [job])

        running = [job for job in alive.values() if job.state == JobState.RUNNING and job.id not in pool.retired]
        await asyncio.gather(*(check(job) for job in running))

    def _autoscale(self, service: ServiceRow, pool: ServicePool, round_: _Round) -> int:
        now = time.monotonic()
        desired = service.desired_replicas
        ready = len(pool.ready)
        per_replica = pool.in_flight / max(ready, 1)
        if pool.in_flight or pool.waiting_for_replica:
            pool.busy_at = now
        if pool.waiting_for_replica and desired == 0:
            round_.note(ServiceEventKind.SCALE, "scaled 0 → 1: a request waits for a replica (cold start)")
            return 1
        if ready and per_replica > service.target_per_replica:
            pool.above_since = pool.above_since or now
            pool.busy_at = now
            if desired < service.max_replicas and ready >= desired and now - pool.above_since >= self.policy.scale_up_after_seconds:
                pool.above_since = now
                round_.note(
                    ServiceEventKind.SCALE,
                    f"scaled {desired} → {desired + 1}: {per_replica:.2f} requests in flight per replica, above the target {service.target_per_replica:g}",
                )
                return desired + 1
            return desired
        pool.above_since = None
        quiet = now - pool.busy_at >= self.policy.cool_down_seconds
        cooled = (utcnow() - service.scaled_at).total_seconds() >= self.policy.cool_down_seconds
        if desired > service.min_replicas and quiet and cooled:
            fewer = desired - 1
            fits = pool.in_flight / fewer <= service.target_per_replica if fewer else not pool.in_flight
            if fits:
                round_.note(
                    ServiceEventKind.SCALE, f"scaled {desired} → {fewer}: quiet for the cool-down ({self.policy.cool_down_seconds:g} s)"
                )
                return fewer
        return max(service.min_replicas, min(desired, service.max_replicas))

    async def _match(self, service: ServiceRow, pool: ServicePool, alive: dict[int, JobRow], desired: int, round_: _Round) -> None:
        active = [job for job in alive.values() if job.state != JobState.CANCELLING and job.id not in pool.retired]
        if len(active) < desired:
            for _ in range(desired - len(active)):
                if not await self._start_replica(service, round_):
                    break
        elif len(active) > desired:
            # not-yet-ready replicas first, then the newest; a replica still answering requests is left to finish
            order = sorted(active, key=lambda job: (job.id in pool.ready, -job.id))
            extra = [job for job in order[: len(active) - desired] if pool.ready.get(job.id) is None or pool.ready[job.id].in_flight == 0]
            await self._retire(pool, extra)

    async def _start_replica(self, service: ServiceRow, round_: _Round) -> bool:
        if service.center_id is None or service.model_dir is None:
            round_.failure = "NO_CENTER: the service has no center"
            return False
        async with self.db.read() as session:
            number = len(await service_store.replica_ids(session, service.id)) + 1
        port = str(free_port())
        command = fill(service.command, {PORT: port, MODEL_DIR: service.model_dir})
        environment = {
            "AICN_SERVICE_PORT": port,
            "AICN_MODEL_DIR": service.model_dir,
            "AICN_SERVICE_REPLICA": str(number),
            "AICN_SERVICE_KEY": service_key(service),
        }
        outcome = await self.jobs.submit(
            Viewer(account_id=service.owner_id),
            SubmitRequest(
                name=f"{service.name} replica {number}",
                command=command,
                request=service.request,
                kind=JobKind.INFERENCE,
                environment=environment,
                center_id=to_global_id("ComputeCenter", service.center_id),
                policy=service.policy or "CHEAPEST",
                service_id=service.id,
            ),
        )
        if outcome.errors or outcome.job is None:
            error = outcome.errors[0] if outcome.errors else None
            reason = f"{error.code}: {error.message}" if error else "the replica could not be created"
            round_.note(ServiceEventKind.REPLICA, f"replica {number} could not start ({reason})")
            if service.state == ServiceState.DEPLOYING:
                round_.failure = reason
            return False
        self.pool(service.id).known.add(outcome.job.id)
        round_.note(ServiceEventKind.REPLICA, f"replica {number} submitted")
        return True

    async def _write(self, service: ServiceRow, pool: ServicePool, round_: _Round) -> None:
        ready = len(pool.ready)

        def plan(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            for kind, message in round_.notes:
                change.event(kind, message, ready)
            if round_.model_dir is not None:
                change.columns["model_dir"] = round_.model_dir
            if current.state not in ENDED_STATES and ready != current.ready_replicas:
                change.columns["ready_replicas"] = ready  # only a change: an unchanged round writes nothing
            if current.state not in (ServiceState.DEPLOYING, ServiceState.READY, ServiceState.SCALING, ServiceState.DEGRADED):
                return change  # stopped meanwhile: the stop path writes the state
            if round_.failure is not None:
                change.columns.update(failure_reason=round_.failure, desired_replicas=0)
                change.state(ServiceState.STOPPING, "the service failed; stopping its replicas", ready)
                return change
            desired = current.desired_replicas if round_.desired is None else round_.desired
            if desired != current.desired_replicas:
                change.columns.update(desired_replicas=desired, scaled_at=utcnow())
            target = self._state(current.state, ready, desired, pool)
            if target != current.state:
                change.state(target, f"{ready} of {desired} replicas ready", ready)
            return change

        await self.ledger.apply(service.id, plan)

    @staticmethod
    def _state(current: str, ready: int, desired: int, pool: ServicePool) -> ServiceState:
        if current == ServiceState.DEPLOYING:
            return ServiceState.READY if ready and ready >= desired else ServiceState.DEPLOYING
        if ready == desired:
            pool.lost = False
            return ServiceState.READY
        if ready < desired and pool.lost:
            return ServiceState.DEGRADED
        return ServiceState.SCALING
