"""Dispatch: place jobs on centers, fail over, and run the network-level queue.

A job's center is recorded (with a PLACEMENT event) before it is handed over, so a crash
in between is finished on restart by resubmitting to that center (connectors key jobs by
reference). When the chosen center refuses or cannot be reached, the next candidate is
tried. A job that no center can start now waits QUEUED with no center; the queue loop
places waiting jobs in submission order as capacity frees.

The queue is told, not polled, of what it waits for: a job ending (capacity frees) and a job
starting to wait, on whichever replica, come over the bus. While jobs wait it also looks every
second (capacity can free where nothing tells: a center's own jobs, a quota raised); with no job
waiting, only as a safety net, for news the bus lost and for submissions a dead replica left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.base import CenterJobState, CenterQuote, JobSpec
from connectors.catalog import Catalog
from connectors.errors import ConnectorError
from resolvers.access.directory import AccountDirectory
from resolvers.billing.pricing import chosen_terms, quote_terms
from resolvers.billing.service import BillingService
from resolvers.centers.registry import Center, CenterRegistry, ComputeUnitInfo
from resolvers.common.background import Alarm, stop_task
from resolvers.common.errors import CenterFault
from resolvers.common.leases import Fence
from resolvers.data.areas import JobArea
from resolvers.data.transfers import TransferService
from resolvers.jobs.ledger import Change, JobLedger
from resolvers.jobs.offers import BusyDevices, OfferData, candidate_models, make_offer, quote_request
from resolvers.jobs.queue import queue_order
from resolvers.jobs.ranking import Candidate, placement_document, rank
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.states import TERMINAL_STATES, JobEventKind, JobState
from store import jobs as job_store
from store.db import Database
from store.tables import DatasetRow, JobRow, TransferRow
from store.types import utcnow

log = logging.getLogger(__name__)

GB = Decimal(10**9)
QUEUE_BATCH = 500
#: the queue's round while jobs wait
QUEUE_INTERVAL_SECONDS = 1.0
#: the queue's safety-net round with no job waiting (a wake message lost, a dead replica's PENDING job)
IDLE_QUEUE_SECONDS = 10.0
#: the bus channel on which any replica tells the network queue's holder that a job waits
QUEUE_CHANNEL = "network-queue"
#: hand-overs in flight at once in one round of the network queue
HAND_OVER_CONCURRENCY = 8


@dataclass
class Snapshot:
    """What the centers reported in one round, adjusted as jobs are handed to them."""

    units: dict[int, list[ComputeUnitInfo] | CenterFault]
    #: the devices running jobs hold, with when their time limits free them: read only when an
    #: offer needs them (a center without enough free devices estimates its start from them)
    busy: list[BusyDevices] | None
    taken_at: datetime
    #: the own offers of centers that price a request themselves (PEER), for the request asked about
    quotes: dict[int, CenterQuote] = field(default_factory=dict)

    def take(self, offer: OfferData) -> None:
        if offer.unit is None:
            return
        current = self.units.get(offer.center.id)
        if isinstance(current, list):
            self.units[offer.center.id] = [
                replace(unit, devices_available=max(0, unit.devices_available - offer.devices)) if unit.key == offer.unit.key else unit
                for unit in current
            ]


class Dispatcher:
    def __init__(
        self,
        db: Database,
        registry: CenterRegistry,
        ledger: JobLedger,
        catalog: Catalog,
        *,
        billing: BillingService | None = None,
        gateway_id: str = "",
        accounts: AccountDirectory | None = None,
    ) -> None:
        self.db = db
        #: the accounts' quotas, mostly from memory
        self.accounts = accounts or AccountDirectory(db)
        #: this gateway's stable id: the last step of the path a hand-over to a peer carries
        self.gateway_id = gateway_id
        self.registry = registry
        self.ledger = ledger
        self.catalog = catalog
        self.billing = billing
        #: told of each hand-over (its center's reconciler looks at the job at once): the center's id, the
        #: job's id there and a glance at the job as the hand-over wrote it (None: it moved on meanwhile)
        self.on_hand_over: Callable[[int, str, job_store.JobGlance | None], None] | None = None
        #: stages jobs' inputs before they are submitted (None: inputs are not staged)
        self.transfers: TransferService | None = None
        #: what moving 10^9 bytes of input to a center costs; set, DATA_LOCAL weighs it against price
        self.transfer_price_per_gb: Decimal | None = None
        #: the network queue's lease (several replicas): a stale holder's queue round hands nothing over
        self.queue_fence: Fence | None = None
        self._staging: dict[int, asyncio.Task[None]] = {}
        self._alarm = Alarm()
        self._task: asyncio.Task[None] | None = None
        #: whether the queue's last round found jobs waiting (then it looks again every second)
        self._jobs_waited = True

    # ------------------------------------------------------------------ offers

    async def snapshot(
        self, centers: Sequence[Center] | None = None, need: ResourceRequest | None = None, policy: str = "CHEAPEST"
    ) -> Snapshot:
        """Every center's compute units; with ``need``, a center that prices requests itself is asked for its offer instead."""
        centers = list(centers or self.registry.all())
        quoting = [center for center in centers if need is not None and center.connector.quotes_itself]
        quotes: dict[int, CenterQuote] = {}

        async def ask(center: Center) -> list[ComputeUnitInfo] | CenterFault:
            try:
                if need is not None and center in quoting:
                    quote = await self.registry.quote_of(center, quote_request(need, policy))
                    if quote is not None:
                        quotes[center.id] = quote
                        return self.registry.units_of_quote(center, quote)
                return await self.registry.capacity_of(center)
            except CenterFault as fault:
                return fault

        answers = await asyncio.gather(*(ask(center) for center in centers))
        units = {center.id: answer for center, answer in zip(centers, answers, strict=True)}
        return Snapshot(units=units, busy=None, taken_at=utcnow(), quotes=quotes)

    async def read_busy(self, snapshot: Snapshot) -> None:
        if snapshot.busy is None:
            async with self.db.read() as session:
                snapshot.busy = await busy_devices(session)

    async def offers_now(
        self, need: ResourceRequest, snapshot: Snapshot, quota_left: float | None, centers: Sequence[Center] | None = None
    ) -> list[OfferData]:
        """The offers, with the running jobs read only when a center lacks free devices (to estimate its start)."""
        offers = self.offers(need, snapshot, quota_left, centers)
        if snapshot.busy is None and any(offer.reason_code == "NOT_ENOUGH_FREE" for offer in offers):
            await self.read_busy(snapshot)
            offers = self.offers(need, snapshot, quota_left, centers)
        return offers

    def offers(
        self, need: ResourceRequest, snapshot: Snapshot, quota_left: float | None, centers: Sequence[Center] | None = None
    ) -> list[OfferData]:
        return [
            make_offer(
                center,
                snapshot.units.get(center.id, []),
                need,
                self.catalog,
                snapshot.busy or (),
                snapshot.taken_at,
                quota_left,
                snapshot.quotes.get(center.id),
            )
            for center in (centers or self.registry.all())
        ]

    async def quota_left(self, account_id: int) -> float | None:
        """Standard units the account may still take, or None when it has no quota."""
        account = await self.accounts.one(account_id)
        limit = account.max_standard_units if account is not None else None
        if limit is None:
            return None
        async with self.db.read() as session:
            in_use = await job_store.units_in_use(session, account_id, self.catalog_units())
        return limit - in_use

    def catalog_units(self) -> Mapping[str, float]:
        return {model.model: model.standard_units for model in self.catalog}

    # ------------------------------------------------------------------ placing one job

    async def place(
        self,
        job_id: int,
        candidates: Sequence[Candidate],
        policy: str | None,
        placed: JobRow | None = None,
        *,
        has_inputs: bool | None = None,
        fence: Fence | None = None,
    ) -> JobRow | None:
        """Hand the job to the first candidate that can start it now and accepts it; else queue it.

        ``placed``: the job as just written, already placed on the first feasible candidate (by
        ``placement_change``, in the transaction that created it): handed over with no new read.
        ``fence``: the network queue's lease, checked where the center is chosen, so a replica
        that lost the queue's lease never hands a job over."""
        for index, candidate in enumerate(candidates):
            if not candidate.offer.feasible:
                continue
            if placed is not None and placed.center_id == candidate.offer.center.id:
                job: JobRow | None = placed
            else:
                job = await self._choose(job_id, candidates, candidate, policy, fence)
            placed = None
            if job is None:
                return None  # ended or claimed meanwhile
            handed, failure = await self.hand_over(job, candidate.offer.center, has_inputs=has_inputs)
            if failure is None:
                return handed
            nexts = [c for c in candidates[index + 1 :] if c.offer.feasible]
            next_step = f"trying {nexts[0].offer.center.name}" if nexts else "no other center can start it now"
            await self._release(job_id, candidate.offer.center, failure, next_step)
        return await self._wait(job_id, candidates, policy)

    async def _choose(
        self, job_id: int, candidates: Sequence[Candidate], chosen: Candidate, policy: str | None, fence: Fence | None = None
    ) -> JobRow | None:
        job, records = await self.ledger.apply(job_id, lambda job: self.placement_change(job, candidates, chosen, policy), fence)
        return job if records else None

    def placement_change(self, job: JobRow, candidates: Sequence[Candidate], chosen: Candidate, policy: str | None) -> Change:
        """What placing ``job`` on ``chosen`` writes: its center, request, terms and a PLACEMENT event."""
        offer = chosen.offer
        change = Change()
        if job.state in TERMINAL_STATES or job.state == JobState.CANCELLING or job.external_id is not None:
            return change
        request = job.request.placed(offer.unit.accelerator.model if offer.unit else None, offer.devices)
        terms = dict((job.placement or {}).get("terms") or {})
        if str(offer.center.id) not in terms and self.billing is not None and offer.unit is not None:
            # the center could not quote at submission (it was down): it quotes now
            quote = self.billing.quote(
                offer.center,
                offer.unit.accelerator.model,
                offer.devices,
                float(job.request.max_duration_minutes),
                offer.unit.price_per_unit_hour,
            )
            terms.update(quote_terms({offer.center.id: quote}))
        change.columns.update(
            center_id=offer.center.id, request=request, placement=placement_document(policy, candidates, offer.center.id, terms=terms)
        )
        change.columns.update(chosen_terms(terms.get(str(offer.center.id))))
        change.events.append({"kind": JobEventKind.PLACEMENT, "message": f"placed on {offer.center.name}: {chosen.reason}"})
        return change

    async def hand_over(self, job: JobRow, center: Center, *, has_inputs: bool | None = None) -> tuple[JobRow | None, str | None]:
        """Submit to the job's center: (the updated job, None), or (None, why the center failed).

        A job with inputs first has them staged into its AICN_INPUT_DIR; that runs in the
        background (the job waits QUEUED at its center, with STAGING events) and the
        submission follows it, so a large copy never holds up the caller."""
        area = job_area(center, job)
        if area is not None:
            await asyncio.to_thread(area.prepare)
            if self.transfers is not None and (has_inputs if has_inputs is not None else await self._has_inputs(job.id)):
                return await self._begin_staging(job, center, area), None
        return await self._submit(job, center, area)

    async def _submit(self, job: JobRow, center: Center, area: JobArea | None) -> tuple[JobRow | None, str | None]:
        spec = spec_for(job, self.gateway_id, area.environment() if area is not None else {})
        if area is not None:
            spec = replace(spec, private_folders=(str(area.input_dir), str(area.output_dir)))
        try:
            submission = await self.registry.call(center, lambda connector: connector.submit(spec))
        except CenterFault as fault:
            return None, f"{fault.code}: {fault.message}"
        except ConnectorError as error:
            return None, f"CENTER_REJECTED: {error.message}"

        state = JobState.QUEUED if submission.state == CenterJobState.QUEUED else JobState.STARTING
        updated = await self.ledger.record_submission(job, submission.external_id, state, f"submitted to {center.name}")
        glance = job_store.JobGlance.of(updated) if updated is not None else None
        if updated is None:  # it moved on meanwhile (a cancel, another writer's hand-over): as it is now
            updated = await self._current(job.id)
        if self.on_hand_over is not None:
            self.on_hand_over(center.id, submission.external_id, glance)
        return updated, None

    # ------------------------------------------------------------------ staging inputs

    async def _has_inputs(self, job_id: int) -> bool:
        async with self.db.read() as session:
            return bool((await job_store.inputs_by_jobs(session, [job_id]))[job_id])

    async def _begin_staging(self, job: JobRow, center: Center, area: JobArea) -> JobRow | None:
        def wait_for_inputs(current: JobRow) -> Change:
            change = Change()
            if current.state == JobState.PENDING:
                change.state(JobState.QUEUED, f"staging inputs on {center.name}")
            return change

        updated, _ = await self.ledger.apply(job.id, wait_for_inputs)
        if job.id not in self._staging:
            task = asyncio.create_task(self._stage_then_submit(job, center, area), name=f"staging-{job.reference}")
            self._staging[job.id] = task
            task.add_done_callback(lambda _: self._staging.pop(job.id, None))
        return updated

    async def _stage_then_submit(self, job: JobRow, center: Center, area: JobArea) -> None:
        assert self.transfers is not None
        try:
            failure = await self.transfers.stage_inputs(job, center, area, self._staging_reporter(job.id))
            current = await self._current(job.id)
            if current is None or current.state in TERMINAL_STATES or current.state == JobState.CANCELLING:
                return  # cancelled while staging
            if failure is not None:
                await self._fail(job.id, f"{failure.code}: {failure.message}")
                return
            _, refused = await self._submit(current, center, area)
            if refused is not None:  # the center refused after all: back to the network queue, staged again elsewhere
                await self._release(job.id, center, refused, "waiting for another center")
                await self.tell_queue()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("staging job %s failed", job.reference)
            await self._fail(job.id, "STAGING_FAILED: the gateway could not stage the job's inputs")

    def _staging_reporter(self, job_id: int) -> Callable[[TransferRow, DatasetRow], Awaitable[bool]]:
        async def report(transfer: TransferRow, dataset: DatasetRow) -> bool:
            """A STAGING event; False (stop copying) once the job was cancelled."""
            document = staging_document(transfer, dataset)

            def note(current: JobRow) -> Change:
                change = Change()
                if current.state not in TERMINAL_STATES:
                    change.events.append({"kind": JobEventKind.STAGING, "progress": document, "message": document["message"]})
                return change

            job, _ = await self.ledger.apply(job_id, note)
            return job is not None and job.state not in TERMINAL_STATES

        return report

    async def _current(self, job_id: int) -> JobRow | None:
        async with self.db.read() as session:
            return (await job_store.jobs_by_ids(session, [job_id])).get(job_id)

    async def _fail(self, job_id: int, reason: str) -> None:
        def fail(current: JobRow) -> Change:
            change = Change()
            if current.state in TERMINAL_STATES:
                return change
            change.columns.update(failure_reason=reason, finished_at=utcnow())
            change.state(JobState.FAILED, reason)
            return change

        await self.ledger.apply(job_id, fail)

    async def _release(self, job_id: int, center: Center, reason: str, next_step: str) -> None:
        def release(job: JobRow) -> Change:
            change = Change()
            if job.external_id is not None or job.state in TERMINAL_STATES:
                return change
            change.columns["center_id"] = None
            change.events.append({"kind": JobEventKind.PLACEMENT, "message": f"{center.name} failed ({reason}); {next_step}"})
            return change

        await self.ledger.apply(job_id, release)

    async def _wait(self, job_id: int, candidates: Sequence[Candidate], policy: str | None) -> JobRow | None:
        runnable = [c for c in candidates if c.offer.could_run]
        if runnable:
            waiting = "WAITING: no center can start the job now; " + "; ".join(f"{c.offer.center.name}: {c.reason}" for c in runnable[:5])
        else:
            waiting = "WAITING: " + "; ".join(f"{c.offer.center.name}: {c.reason}" for c in candidates[:5])

        def wait(job: JobRow) -> Change:
            change = Change()
            if job.state in TERMINAL_STATES or job.state == JobState.CANCELLING or job.external_id is not None:
                return change
            previous = (job.placement or {}).get("waiting")
            change.columns["placement"] = placement_document(policy, candidates, None, waiting, terms=(job.placement or {}).get("terms"))
            if job.state != JobState.QUEUED:
                change.state(JobState.QUEUED, waiting)
            elif previous != waiting:
                change.events.append({"kind": JobEventKind.PLACEMENT, "message": waiting})
            return change

        job, written = await self.ledger.apply(job_id, wait)
        # only a job that has just started to wait: the queue's own round re-waits the jobs it
        # could not start, and waking itself for them would run it flat out while any job waits
        if any(record.kind == JobEventKind.STATE and record.state == JobState.QUEUED for record in written):
            await self.tell_queue()
        return job

    # ------------------------------------------------------------------ the network queue

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="network-queue")

    async def stop_queue(self) -> None:
        """Stop the network queue's loop only (its lease went to another replica); stagings go on."""
        await stop_task(self._task)
        self._task = None

    async def stop(self) -> None:
        await self.stop_queue()
        for task in list(self._staging.values()):
            await stop_task(task)

    @property
    def queue_idle(self) -> bool:
        """Whether the network queue's last round found no job waiting (it then waits to be told)."""
        return not self._jobs_waited

    def wake(self) -> None:
        self._alarm.ring()

    async def tell_queue(self) -> None:
        """A job waits: wake the network queue, here and on the replica that holds it."""
        self.wake()
        await self.ledger.bus.publish(QUEUE_CHANNEL, {})

    async def _run(self) -> None:
        self._jobs_waited = True  # a replica taking the queue over looks at once, and then as if jobs waited
        unwatch = self.ledger.bus.watch(QUEUE_CHANNEL, lambda _message: self.wake())
        listener = asyncio.create_task(self._wake_on_job_ends())
        try:
            await self._serve_queue()
        finally:
            unwatch()
            await stop_task(listener)

    async def _wake_on_job_ends(self) -> None:
        """Capacity frees when a job ends: that is when waiting jobs may start."""
        async with self.ledger.bus.subscribe("jobs") as live:
            while True:
                message = await live.get()
                if message and message.get("kind") == JobEventKind.STATE and message.get("state") in TERMINAL_STATES:
                    self.wake()

    async def _serve_queue(self) -> None:
        while True:
            await self._alarm.sleep(QUEUE_INTERVAL_SECONDS if self._jobs_waited else IDLE_QUEUE_SECONDS)
            try:
                await self.dispatch_queue()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatching the network queue failed")

    async def dispatch_queue(self) -> int:
        """One round: waiting jobs in queue order (``resolvers.jobs.queue``); returns how many were handed over.

        Decisions are made one job at a time, in order, against one capacity snapshot that
        each decision draws down; the hand-overs then run concurrently (a center's submit
        can take tens of milliseconds). A job that cannot start blocks later jobs asking for
        the same device model (no overtaking), but not jobs that ask for something else.
        """
        async with self.db.read() as session:
            waiting = await job_store.waiting_jobs(session, QUEUE_BATCH)
        self._jobs_waited = bool(waiting)
        if not waiting:
            return 0
        waiting = queue_order(waiting, utcnow())
        snapshot = await self.snapshot()
        await self.read_busy(snapshot)
        blocked: set[str | None] = set()
        quotas: dict[int, float | None] = {}
        startable: list[tuple[JobRow, list[Candidate]]] = []
        for job in waiting:
            need = job.request.as_asked()
            models = candidate_models(need)
            if (models is None and blocked) or (models is not None and (None in blocked or blocked & set(models))):
                continue
            if job.owner_id not in quotas:
                quotas[job.owner_id] = await self.quota_left(job.owner_id)
            offers = self.offers(need, snapshot, quotas[job.owner_id])
            candidates = rank(
                offers, job.policy or "CHEAPEST", snapshot.taken_at, await self._local_inputs(job), await self._move_costs(job)
            )
            first = next((candidate for candidate in candidates if candidate.offer.feasible), None)
            if first is None:
                blocked.update(models or {None})
                await self._wait(job.id, candidates, job.policy)
                continue
            snapshot.take(first.offer)
            if quotas[job.owner_id] is not None:
                quotas[job.owner_id] = float(quotas[job.owner_id] or 0) - first.offer.standard_units
            startable.append((job, candidates))
        gate = asyncio.Semaphore(HAND_OVER_CONCURRENCY)

        async def hand(job: JobRow, candidates: list[Candidate]) -> bool:
            async with gate:
                result = await self.place(job.id, candidates, job.policy, fence=self.queue_fence)
            return result is not None and result.external_id is not None

        outcomes = await asyncio.gather(*(hand(job, candidates) for job, candidates in startable))
        return sum(outcomes)

    async def move_costs(self, dataset_ids: Sequence[int]) -> dict[int, Decimal] | None:
        """What moving the inputs a center lacks there would cost, per center (None: moving data is not priced)."""
        if self.transfer_price_per_gb is None or not dataset_ids:
            return None
        async with self.db.read() as session:
            total, held = await job_store.input_bytes_by_center(session, dataset_ids)
        price = self.transfer_price_per_gb
        return {
            center.id: (Decimal(total - held.get(center.id, 0)) / GB * price).quantize(Decimal("0.000001"))
            for center in self.registry.all()
        }

    async def _move_costs(self, job: JobRow) -> dict[int, Decimal] | None:
        if job.policy != "DATA_LOCAL" or self.transfer_price_per_gb is None:
            return None
        async with self.db.read() as session:
            inputs = (await job_store.inputs_by_jobs(session, [job.id]))[job.id]
        return await self.move_costs([dataset.id for dataset in inputs])

    async def _local_inputs(self, job: JobRow) -> dict[int, int]:
        if job.policy != "DATA_LOCAL":
            return {}
        async with self.db.read() as session:
            return await job_store.input_replicas_by_center(session, job.id)


async def busy_devices(session: Any) -> list[BusyDevices]:
    rows = await job_store.active_allocations(session)
    now = utcnow()
    busy: list[BusyDevices] = []
    for center_id, request, started_at in rows:
        if center_id is None or not request.accelerator:
            continue
        begun = started_at or now
        busy.append(
            BusyDevices(
                center_id,
                request.accelerator,
                int(request.devices or 1),
                begun + timedelta(minutes=float(request.max_duration_minutes)),
            )
        )
    return busy


def staging_document(transfer: TransferRow, dataset: DatasetRow) -> dict[str, Any]:
    """A STAGING event's progress: one input's copy, bytes done of total."""
    total = transfer.bytes_total
    verb = {"VERIFIED": "staged and verified", "FAILED": "staging failed for"}.get(transfer.state, "staging")
    return {
        "datasetId": dataset.id,
        "datasetName": dataset.name,
        "transferId": transfer.id,
        "state": transfer.state,
        "bytesDone": transfer.bytes_done,
        "bytesTotal": total,
        "message": f"{verb} {dataset.name}: {transfer.bytes_done} of {total if total is not None else '?'} bytes",
        "at": utcnow().isoformat(),
    }


def job_area(center: Center, job: JobRow) -> JobArea | None:
    return JobArea(center.data_root, job.reference) if center.data_root is not None else None


def spec_for(job: JobRow, gateway_id: str = "", data_environment: Mapping[str, str] | None = None) -> JobSpec:
    request = job.request
    accelerator, devices = request.allocation()
    environment = {str(key): str(value) for key, value in (job.environment or {}).items()}
    environment.update(data_environment or {})
    return JobSpec(
        reference=job.reference,
        name=job.name,
        command=tuple(job.command),
        max_duration_seconds=float(request.max_duration_minutes) * 60.0,
        environment=environment,
        accelerator=accelerator,
        devices=int(devices),
        cpus=request.cpus,
        memory_gb=request.memory_gb,
        via=(*(job.via or ()), *((gateway_id,) if gateway_id else ())),
    )
