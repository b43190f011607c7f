"""Jobs: validate and submit, place, hand to a center, cancel, read back."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from connectors.base import CenterQuote, LogChunk
from connectors.errors import ConnectorError, JobNotFound
from resolvers.access.viewer import Viewer
from resolvers.billing.bills import Notice
from resolvers.billing.pricing import MONEY_PLACES as PRICE_PLACES
from resolvers.billing.pricing import Quote, max_hold, provisional_terms, quote_terms
from resolvers.billing.service import BillingService
from resolvers.centers.registry import Center, CenterRegistry, ComputeUnitInfo
from resolvers.common.errors import CenterFault, UserErrorData
from resolvers.common.ids import int_key
from resolvers.jobs.dispatch import Dispatcher, Snapshot
from resolvers.jobs.ledger import Change, EventRecord, JobLedger
from resolvers.jobs.ranking import Candidate, placement_document, rank
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.states import TERMINAL_STATES, UNSUBMITTED_STATES, JobEventKind, JobKind, JobState
from store import datasets as dataset_store
from store import jobs as job_store
from store.db import Database
from store.tables import JobRow
from store.types import utcnow

MAX_NAME = 200
MAX_ARGV = 1000
MAX_ARG_LENGTH = 100_000
MAX_ENVIRONMENT = 200
MAX_DURATION_MINUTES = 60 * 24 * 30
MIN_PRIORITY, MAX_PRIORITY = -100, 100


@dataclass(frozen=True)
class SubmitRequest:
    name: str
    command: Sequence[str]
    request: ResourceRequest
    kind: JobKind = JobKind.BATCH
    environment: Any = None
    center_id: str | None = None
    policy: str = "CHEAPEST"
    input_dataset_ids: Sequence[str] = ()
    output_model_name: str | None = None
    output_dataset_name: str | None = None
    idempotency_key: str | None = None
    priority: int = 0
    #: the inference service this job is a replica of
    service_id: int | None = None
    #: the gateways that handed the job on to this one, its origin first (empty: a user submits here)
    via: Sequence[str] = ()


@dataclass
class SubmitOutcome:
    job: JobRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


class JobService:
    def __init__(
        self,
        db: Database,
        registry: CenterRegistry,
        ledger: JobLedger,
        dispatcher: Dispatcher,
        *,
        quota_mode: str = "queue",
        billing: BillingService | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.quota_mode = quota_mode
        self.billing = billing

    @property
    def gateway_id(self) -> str:
        """This gateway's stable id (peers know it by that)."""
        return self.dispatcher.gateway_id

    # ------------------------------------------------------------------ submit

    async def submit(self, viewer: Viewer, request: SubmitRequest) -> SubmitOutcome:
        if self.dispatcher.gateway_id in request.via:
            path = " -> ".join([*request.via, self.dispatcher.gateway_id])
            message = f"this gateway is already on the job's path ({path}): handing it here again would loop"
            return SubmitOutcome(errors=[UserErrorData(message, "PEER_LOOP", ())])
        fingerprint = submission_fingerprint(request)
        if request.idempotency_key:
            async with self.db.read() as session:
                existing = await job_store.find_by_idempotency_key(session, viewer.account_id, request.idempotency_key)
            if existing is not None:
                return _replay(existing, fingerprint)
        errors = _validate(request, self.registry)
        dataset_ids = await self._dataset_ids(viewer, request.input_dataset_ids, errors)
        centers = self._centers(request, errors)
        if errors:
            return SubmitOutcome(errors=errors)
        resources = request.request
        candidates = await self.rank(viewer, resources, request.policy, centers, dataset_ids)
        refusal = await self._refusal(candidates, viewer.account_id)
        if refusal is not None:
            return SubmitOutcome(errors=[refusal])
        policy = None if request.center_id else request.policy
        quotes = self._quotes(candidates, resources.max_duration_minutes)
        notices: list[Notice] = []
        try:
            async with self.db.transaction() as session:
                if request.idempotency_key:  # a concurrent twin may have won the race
                    existing = await job_store.claim_idempotency_key(session, viewer.account_id, request.idempotency_key)
                    if existing is not None:
                        return _replay(existing, fingerprint)
                if self.billing is not None and quotes:  # the hold is the job row itself, written below
                    refusal = await self.billing.reserve(session, viewer.account_id, max_hold(quotes), notices)
                    if refusal is not None:
                        return SubmitOutcome(errors=[refusal])
                job = JobRow(
                    owner_id=viewer.account_id,
                    reference=f"aicn-{secrets.token_hex(6)}",
                    name=request.name,
                    kind=request.kind,
                    state=JobState.PENDING,
                    center_id=None,
                    request=resources,
                    command=list(request.command),
                    environment=request.environment,
                    output_model_name=request.output_model_name,
                    output_dataset_name=request.output_dataset_name,
                    policy=policy,
                    placement=placement_document(policy, candidates, None, terms=quote_terms(quotes)),
                    idempotency_key=request.idempotency_key,
                    idempotency_fingerprint=fingerprint if request.idempotency_key else None,
                    via=list(request.via) or None,
                    progress_count=0,
                    priority=request.priority,
                    last_seq=0,
                    service_id=request.service_id,
                    **provisional_terms(quotes, candidates),
                )
                # written placed on the first center that can start it now: one INSERT of the job, one of its events
                events: list[dict[str, Any]] = [
                    {"kind": JobEventKind.STATE, "state": JobState.PENDING, "message": "accepted by the gateway"}
                ]
                first = next((candidate for candidate in candidates if candidate.offer.feasible), None)
                if first is not None:
                    placing = self.dispatcher.placement_change(job, candidates, first, policy)
                    for column, value in placing.columns.items():
                        setattr(job, column, value)
                    events.extend(placing.events)
                job.last_seq = len(events)
                await job_store.insert_job(session, job)
                await job_store.set_inputs(session, job.id, dataset_ids)
                rows = await job_store.first_events(session, job, events)
                records = [EventRecord.from_row(row, job.owner_id) for row in rows]
        except IntegrityError:
            # a concurrent twin with the same idempotency key committed first: its job is the answer
            winner = await self._idempotent_twin(viewer, request.idempotency_key)
            if winner is None:
                raise
            return _replay(winner, fingerprint)
        finally:
            if notices and self.billing is not None:  # a refusal by the low-balance threshold raised an alert
                await self.billing.publish(notices)
        await self.ledger.announce(records)
        placed = await self.dispatcher.place(job.id, candidates, policy, job, has_inputs=bool(dataset_ids))
        return SubmitOutcome(job=placed or job)

    async def _idempotent_twin(self, viewer: Viewer, key: str | None) -> JobRow | None:
        if not key:
            return None
        async with self.db.read() as session:
            return await job_store.find_by_idempotency_key(session, viewer.account_id, key)

    def _quotes(self, candidates: Sequence[Candidate], max_minutes: float) -> dict[int, Quote]:
        """The terms each center that could run the job offers it, fixed now (later price changes do not apply)."""
        if self.billing is None:
            return {}
        return {
            candidate.center_id: self.billing.quote(
                candidate.offer.center,
                candidate.offer.unit.accelerator.model,
                candidate.offer.devices,
                max_minutes,
                candidate.offer.unit.price_per_unit_hour,
            )
            for candidate in candidates
            if candidate.offer.could_run and candidate.offer.unit is not None
        }

    async def offers(
        self,
        viewer: Viewer,
        need: ResourceRequest,
        policy: str,
        units: Mapping[int, list[ComputeUnitInfo] | CenterFault],
        quotes: Mapping[int, CenterQuote] | None = None,
    ) -> list[Candidate]:
        """Every center's quote for ``need``, from capacity (and own offers) the caller has already asked, best first by ``policy``."""
        snapshot = Snapshot(units=dict(units), busy=None, taken_at=utcnow(), quotes=dict(quotes or {}))
        quota_left = await self.dispatcher.quota_left(viewer.account_id)
        return rank(await self.dispatcher.offers_now(need, snapshot, quota_left), policy, snapshot.taken_at)

    async def rank(
        self, viewer: Viewer, need: ResourceRequest, policy: str, centers: Sequence[Center], dataset_ids: Sequence[int] = ()
    ) -> list[Candidate]:
        """Every center's offer for ``need``, best first by ``policy``."""
        snapshot = await self.dispatcher.snapshot(centers, need, policy)
        quota_left = await self.dispatcher.quota_left(viewer.account_id)
        offers = await self.dispatcher.offers_now(need, snapshot, quota_left, centers)
        local: dict[int, int] = {}
        move_costs = None
        if policy == "DATA_LOCAL" and dataset_ids:
            async with self.db.read() as session:
                local = await job_store.replicas_by_center(session, dataset_ids)
            move_costs = await self.dispatcher.move_costs(dataset_ids)
        return rank(offers, policy, snapshot.taken_at, local, move_costs)

    async def _quota_mode(self, account_id: int) -> str:
        account = await self.dispatcher.accounts.one(account_id)
        return (account.quota_mode if account is not None else None) or self.quota_mode

    async def _refusal(self, candidates: Sequence[Candidate], account_id: int) -> UserErrorData | None:
        """Why nothing should be created: no center could ever run it, or the quota says no.
        The message names every center's reason."""
        if any(candidate.offer.could_run for candidate in candidates):
            return None
        codes = {candidate.offer.reason_code for candidate in candidates}
        reasons = "; ".join(f"{c.offer.center.name}: {c.reason}" for c in candidates)
        if "OVER_QUOTA" in codes and await self._quota_mode(account_id) == "refuse":
            return UserErrorData(f"the job would exceed the account's quota ({reasons})", "QUOTA_EXCEEDED", ("request",))
        if codes & {"CENTER_DOWN", "OVER_QUOTA"}:
            return None  # it may run later: it waits in the network queue
        return UserErrorData(f"no center can run this job ({reasons})", "NO_FEASIBLE_CENTER", ("request",))

    def _centers(self, request: SubmitRequest, errors: list[UserErrorData]) -> list[Center]:
        if request.center_id is None:
            return self.registry.all()
        center_key = int_key(request.center_id, "ComputeCenter")
        center = self.registry.get(center_key) if center_key is not None else None
        if center is None:
            errors.append(UserErrorData("no such center", "CENTER_NOT_FOUND", ("centerId",)))
            return []
        return [center]

    async def resubmit(self, job_id: int) -> JobRow | None:
        """Finish a hand-over a crash interrupted: the job has a center but no center id for it yet."""
        async with self.db.read() as session:
            job = (await job_store.jobs_by_ids(session, [job_id])).get(job_id)
        if job is None or job.state not in UNSUBMITTED_STATES or job.center_id is None or job.external_id is not None:
            return job
        center = self.registry.get(job.center_id)
        if center is None:
            return await self._fail(job_id, "CENTER_REMOVED: the job's center is no longer configured")
        handed, failure = await self.dispatcher.hand_over(job, center)
        if failure is not None:
            return await self._fail(job_id, failure)
        return handed

    async def _fail(self, job_id: int, reason: str) -> JobRow | None:
        def fail(current: JobRow) -> Change:
            change = Change()
            if current.state in TERMINAL_STATES:
                return change
            change.columns.update(failure_reason=reason, finished_at=utcnow())
            change.state(JobState.FAILED, reason)
            return change

        job, _ = await self.ledger.apply(job_id, fail)
        return job

    async def _dataset_ids(self, viewer: Viewer, ids: Sequence[str], errors: list[UserErrorData]) -> list[int]:
        keys: list[int] = []
        for index, global_id in enumerate(ids):
            key = int_key(global_id, "Dataset")
            if key is None:
                errors.append(UserErrorData(f"no dataset with id {global_id}", "DATASET_NOT_FOUND", ("inputDatasetIds", str(index))))
            else:
                keys.append(key)
        if keys:
            async with self.db.read() as session:
                found = await dataset_store.datasets_by_ids(session, keys, viewer.scope)
            for index, key in enumerate(keys):
                if key not in found:
                    errors.append(UserErrorData(f"no dataset with id {ids[index]}", "DATASET_NOT_FOUND", ("inputDatasetIds", str(index))))
        return keys

    # ------------------------------------------------------------------ cancel

    async def cancel(self, viewer: Viewer, job_global_id: str) -> SubmitOutcome:
        key = int_key(job_global_id, "Job")
        job: JobRow | None = None
        if key is not None:
            async with self.db.read() as session:
                job = (await job_store.jobs_by_ids(session, [key], viewer.scope)).get(key)
        if job is None:
            return SubmitOutcome(errors=[UserErrorData("no such job", "JOB_NOT_FOUND", ("jobId",))])
        if job.state in TERMINAL_STATES:
            return SubmitOutcome(
                job=job, errors=[UserErrorData(f"the job has already ended ({job.state})", "JOB_ALREADY_FINISHED", ("jobId",))]
            )

        def begin_cancel(current: JobRow) -> Change:
            change = Change()
            if current.state in TERMINAL_STATES or current.state == JobState.CANCELLING:
                return change
            if current.external_id is None:  # never reached a center: nothing to stop
                change.columns["finished_at"] = utcnow()
                change.columns["failure_reason"] = "CANCELLED: cancelled on request"
                change.state(JobState.CANCELLED, "cancelled on request")
            else:
                change.state(JobState.CANCELLING, "cancel requested")
            return change

        job, _ = await self.ledger.apply(job.id, begin_cancel)
        if job is not None and job.state == JobState.CANCELLING:
            await self.send_cancel(job)
        return SubmitOutcome(job=job)

    async def send_cancel(self, job: JobRow) -> None:
        center = self.registry.get(job.center_id) if job.center_id is not None else None
        if center is None or job.external_id is None:
            return
        external_id = job.external_id
        try:
            await self.registry.call(center, lambda connector: connector.cancel(external_id))
        except JobNotFound:
            pass
        except (CenterFault, ConnectorError):
            pass  # the reconciler asks again while the job stays CANCELLING

    # ------------------------------------------------------------------ read

    async def logs(self, job: JobRow, tail_lines: int) -> str | None:
        center = self.registry.get(job.center_id) if job.center_id is not None else None
        if center is None or job.external_id is None:
            return None
        external_id = job.external_id
        try:
            return await self.registry.call(center, lambda connector: connector.logs(external_id, tail_lines))
        except JobNotFound:
            return None

    async def read_log(self, job: JobRow, offset: int, max_bytes: int) -> LogChunk | None:
        """Bytes of the job's output from ``offset`` (negative: the last bytes), as its center reads them; None before it has one."""
        center = self.registry.get(job.center_id) if job.center_id is not None else None
        if center is None or job.external_id is None:
            return None
        external_id = job.external_id
        try:
            return await self.registry.call(center, lambda connector: connector.read_log(external_id, offset, max_bytes))
        except JobNotFound:
            return None


def submission_fingerprint(request: SubmitRequest) -> str:
    """SHA-256 of everything a submission asks for but its idempotency key, in a canonical form."""
    document = {
        "name": request.name,
        "command": list(request.command),
        "request": request.request.to_document(),
        "kind": str(request.kind),
        "environment": request.environment,
        "centerId": request.center_id,
        "policy": request.policy,
        "inputDatasetIds": list(request.input_dataset_ids),
        "outputModelName": request.output_model_name,
    }
    if request.output_dataset_name is not None:  # absent from older fingerprints: keys made before stay valid
        document["outputDatasetName"] = request.output_dataset_name
    if request.priority:  # absent when 0, so keys made before priorities keep their fingerprint
        document["priority"] = request.priority
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(existing: JobRow, fingerprint: str) -> SubmitOutcome:
    """The job a key made, when the same submission comes again; a refusal when the key comes with another."""
    if existing.idempotency_fingerprint is not None and existing.idempotency_fingerprint != fingerprint:
        message = "this idempotencyKey was used for a different submission; use a new key for a new job"
        return SubmitOutcome(errors=[UserErrorData(message, "IDEMPOTENCY_KEY_REUSED", ("idempotencyKey",))])
    return SubmitOutcome(job=existing)


def _validate(request: SubmitRequest, registry: CenterRegistry) -> list[UserErrorData]:
    errors: list[UserErrorData] = []

    def bad(message: str, code: str, *path: str) -> None:
        errors.append(UserErrorData(message, code, path))

    if not request.name.strip():
        bad("the name must not be empty", "INVALID_NAME", "name")
    elif len(request.name) > MAX_NAME:
        bad(f"the name must be at most {MAX_NAME} characters", "INVALID_NAME", "name")
    if not request.command or not request.command[0].strip():
        bad("the command must be a non-empty list whose first item names a program", "EMPTY_COMMAND", "command")
    elif len(request.command) > MAX_ARGV or any(len(arg) > MAX_ARG_LENGTH or "\x00" in arg for arg in request.command):
        bad("the command has too many or too long arguments, or a NUL byte", "INVALID_COMMAND", "command")
    environment = request.environment
    if environment is not None:
        if not isinstance(environment, Mapping):
            bad("environment must be a JSON object of names to strings", "INVALID_ENVIRONMENT", "environment")
        elif len(environment) > MAX_ENVIRONMENT or not all(
            isinstance(key, str) and key and "=" not in key and "\x00" not in key and isinstance(value, str)
            for key, value in environment.items()
        ):
            bad('environment must map variable names to string values (write 1 as "1")', "INVALID_ENVIRONMENT", "environment")
    errors.extend(validate_resources(request.request, registry))
    if request.idempotency_key is not None and not (0 < len(request.idempotency_key) <= 200):
        bad("idempotencyKey must be 1 to 200 characters", "INVALID_IDEMPOTENCY_KEY", "idempotencyKey")
    if request.output_model_name is not None and not (0 < len(request.output_model_name.strip()) <= MAX_NAME):
        bad("outputModelName must be 1 to 200 characters", "INVALID_NAME", "outputModelName")
    if request.output_dataset_name is not None and not (0 < len(request.output_dataset_name.strip()) <= MAX_NAME):
        bad("outputDatasetName must be 1 to 200 characters", "INVALID_NAME", "outputDatasetName")
    if not MIN_PRIORITY <= request.priority <= MAX_PRIORITY:
        bad(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", "INVALID_PRIORITY", "priority")
    return errors


def validate_resources(resources: ResourceRequest, registry: CenterRegistry) -> list[UserErrorData]:
    """What is wrong with a resource request (shared by submitJob and offers)."""
    errors: list[UserErrorData] = []

    def bad(message: str, code: str, *path: str) -> None:
        errors.append(UserErrorData(message, code, path))

    duration = resources.max_duration_minutes
    if not (isinstance(duration, (int, float)) and math.isfinite(duration)) or duration <= 0:
        bad("maxDurationMinutes must be greater than zero", "INVALID_DURATION", "request", "maxDurationMinutes")
    elif duration > MAX_DURATION_MINUTES:
        bad(f"maxDurationMinutes must be at most {MAX_DURATION_MINUTES}", "INVALID_DURATION", "request", "maxDurationMinutes")
    if resources.accelerator is not None and resources.accelerator not in registry.catalog:
        bad(f"unknown accelerator model {resources.accelerator!r}; see acceleratorCatalog", "UNKNOWN_ACCELERATOR", "request", "accelerator")
    if resources.devices is not None and resources.devices <= 0:
        bad("devices must be at least 1", "INVALID_DEVICES", "request", "devices")
    if resources.standard_units is not None and not (math.isfinite(resources.standard_units) and resources.standard_units > 0):
        bad("standardUnits must be greater than zero", "INVALID_UNITS", "request", "standardUnits")
    if resources.standard_units is not None and (resources.devices is not None or resources.cpus is not None):
        given = "devices" if resources.devices is not None else "cpus"
        bad(
            f"give either standardUnits (on any fitting hardware) or {given}, not both",
            "CONFLICTING_RESOURCES",
            "request",
            "standardUnits",
        )
    if all(value is None for value in (resources.accelerator, resources.devices, resources.standard_units, resources.cpus)):
        bad("the request names no resources: give devices, standardUnits, cpus or an accelerator", "NO_RESOURCES", "request")
    if resources.cpus is not None and resources.cpus <= 0:
        bad("cpus must be at least 1", "INVALID_CPUS", "request", "cpus")
    if resources.memory_gb is not None and not (math.isfinite(resources.memory_gb) and resources.memory_gb > 0):
        bad("memoryGb must be greater than zero", "INVALID_MEMORY", "request", "memoryGb")
    cap = resources.max_price_per_hour
    if cap is not None and (not cap.is_finite() or cap <= 0 or cap != cap.quantize(PRICE_PLACES)):
        bad("maxPricePerHour must be a positive decimal with at most 6 places", "INVALID_PRICE_CAP", "request", "maxPricePerHour")
    for field_name, keys in (("centerIds", resources.center_ids or ()), ("excludeCenterIds", resources.exclude_center_ids)):
        for index, key in enumerate(keys):
            if registry.get(key) is None:
                bad(f"no center with the id given at {field_name}[{index}]", "CENTER_NOT_FOUND", "request", field_name, str(index))
    if resources.center_ids is not None and not resources.center_ids:
        bad("centerIds, when given, must name at least one center", "CENTER_NOT_FOUND", "request", "centerIds")
    return errors
