"""Inference services: deploy a model version, scale, stop, invoke."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from connectors.errors import ConnectorError
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.errors import CenterFault, UserErrorData
from resolvers.common.ids import int_key, to_global_id
from resolvers.jobs.ranking import Candidate, placement_document
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.service import JobService
from resolvers.services.controller import ServiceController
from resolvers.services.ledger import ServiceChange, ServiceEventRecord, ServiceLedger
from resolvers.services.policy import ServingPolicy
from resolvers.services.proxy import Invocation, Passthrough, Proxy, Relay
from resolvers.services.serving import ServingPlan, serving_plan
from resolvers.services.states import ENDED_STATES, SERVING_STATES, ServiceEventKind, ServiceProtocol, ServiceState
from resolvers.services.usage import TokenUsage
from store import datasets as dataset_store
from store import services as service_store
from store.db import Database
from store.service_tables import ServiceRow

#: center kinds whose connector can say where a replica's server listens
SERVING_KINDS = frozenset({"LOCAL", "SLURM", "RAY", "PEER"})
#: kinds that serve with the built-in ONNX runner only (a RAY center's replicas are Ray Serve's, not a command)
BUILTIN_ONLY_KINDS = frozenset({"RAY"})
MAX_NAME = 200
MAX_REPLICAS = 64
MAX_DEADLINE_SECONDS = 600.0


@dataclass(frozen=True)
class Scale:
    min: int
    max: int
    target_per_replica: float | None = None


@dataclass(frozen=True)
class DeployRequest:
    model_id: str
    request: ResourceRequest
    name: str | None = None
    center_id: str | None = None
    policy: str = "CHEAPEST"
    scale: Scale | None = None
    command: Sequence[str] | None = None
    protocol: str = ServiceProtocol.INVOKE
    idempotent: bool = False
    deadline_seconds: float = 30.0
    idempotency_key: str | None = None


@dataclass
class ServiceOutcome:
    service: ServiceRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


def _not_found() -> ServiceOutcome:
    return ServiceOutcome(errors=[UserErrorData("no such service", "SERVICE_NOT_FOUND", ("serviceId",))])


def scale_errors(scale: Scale) -> list[UserErrorData]:
    errors: list[UserErrorData] = []
    if scale.min < 0 or scale.max < 0:
        errors.append(UserErrorData("replica counts must not be negative", "INVALID_SCALE", ("scale",)))
    elif scale.max < 1 or scale.max > MAX_REPLICAS:
        errors.append(UserErrorData(f"max must be between 1 and {MAX_REPLICAS}", "INVALID_SCALE", ("scale", "max")))
    elif scale.min > scale.max:
        errors.append(UserErrorData(f"min ({scale.min}) must not exceed max ({scale.max})", "INVALID_SCALE", ("scale", "min")))
    if scale.target_per_replica is not None and not scale.target_per_replica > 0:
        errors.append(UserErrorData("targetRequestsPerReplica must be above 0", "INVALID_SCALE", ("scale", "targetRequestsPerReplica")))
    return errors


class ServiceService:
    def __init__(
        self,
        db: Database,
        registry: CenterRegistry,
        jobs: JobService,
        ledger: ServiceLedger,
        controller: ServiceController,
        proxy: Proxy,
        policy: ServingPolicy,
    ) -> None:
        self.db = db
        self.registry = registry
        self.jobs = jobs
        self.ledger = ledger
        self.controller = controller
        self.proxy = proxy
        self.policy = policy

    async def find(self, viewer: Viewer, global_id: str, *, recent: bool = False) -> ServiceRow | None:
        """The viewer's service by id; another account's answers exactly like a missing one (None).
        ``recent``: a serving service as the controller saw it at most one round ago (no database read)."""
        key = int_key(global_id, "InferenceService")
        if key is None:
            return None
        known = self.controller.active.get(key) if recent else None
        if known is not None and known.state in SERVING_STATES:
            return known if viewer.scope is None or known.owner_id == viewer.scope else None
        async with self.db.read() as session:
            return (await service_store.services_by_ids(session, [key], viewer.scope)).get(key)

    # ------------------------------------------------------------------ deploy

    async def deploy(self, viewer: Viewer, request: DeployRequest) -> ServiceOutcome:
        if request.idempotency_key:
            async with self.db.read() as session:
                existing = await service_store.find_by_idempotency_key(session, viewer.account_id, request.idempotency_key)
            if existing is not None:
                return ServiceOutcome(service=existing)
        errors: list[UserErrorData] = []
        scale = request.scale or Scale(1, 1, 1.0)
        errors += scale_errors(scale)
        name = request.name
        if name is not None and (not name.strip() or len(name) > MAX_NAME):
            errors.append(UserErrorData(f"the name must be 1 to {MAX_NAME} characters", "INVALID_NAME", ("name",)))
        if not 0 < request.deadline_seconds <= MAX_DEADLINE_SECONDS:
            errors.append(
                UserErrorData(
                    f"deadlineSeconds must be above 0 and at most {MAX_DEADLINE_SECONDS:g}", "INVALID_DEADLINE", ("deadlineSeconds",)
                )
            )
        model_key = int_key(request.model_id, "Model")
        model = None
        if model_key is not None:
            async with self.db.read() as session:
                model = (await dataset_store.models_by_ids(session, [model_key], viewer.scope)).get(model_key)
        if model is None:
            errors.append(UserErrorData("no such model", "MODEL_NOT_FOUND", ("modelId",)))
        plan = serving_plan(model, request.command, self.policy.runner_python) if model is not None else None
        if isinstance(plan, UserErrorData):
            errors.append(plan)
        elif plan is not None and plan.builtin and request.protocol == ServiceProtocol.OPENAI:
            message = "the built-in ONNX runner speaks INVOKE; an OPENAI service needs a serving command that speaks the OpenAI API"
            errors.append(UserErrorData(message, "MODEL_NOT_SERVABLE", ("protocol",)))
        centers = self._centers(request.center_id, errors, plan)
        if errors or model is None or not isinstance(plan, ServingPlan):
            return ServiceOutcome(errors=errors)
        candidates = await self.jobs.rank(viewer, request.request, request.policy, centers)
        chosen = next((c for c in candidates if c.offer.could_run and _serves(c.offer.center.kind, plan)), None)
        if chosen is None:
            reasons = "; ".join(
                f"{c.offer.center.name}: {c.reason if _serves(c.offer.center.kind, plan) else _why_not(c.offer.center.kind)}"
                for c in candidates[:5]
            )
            return ServiceOutcome(errors=[UserErrorData(f"no center can serve this model ({reasons})", "NO_FEASIBLE_CENTER", ("request",))])
        return await self._create(viewer, request, model.id, name or f"{model.name}-{model.version}", scale, plan, candidates, chosen)

    def _centers(self, center_id: str | None, errors: list[UserErrorData], plan: ServingPlan | UserErrorData | None) -> list[Center]:
        if center_id is None:
            return self.registry.all()
        key = int_key(center_id, "ComputeCenter")
        center = self.registry.get(key) if key is not None else None
        if center is None:
            errors.append(UserErrorData("no such center", "CENTER_NOT_FOUND", ("centerId",)))
            return []
        if not _serves(center.kind, plan if isinstance(plan, ServingPlan) else None):
            errors.append(UserErrorData(f"a {center.kind} center {_why_not(center.kind)}", "CENTER_CANNOT_SERVE", ("centerId",)))
        return [center]

    async def _create(
        self,
        viewer: Viewer,
        request: DeployRequest,
        model_id: int,
        name: str,
        scale: Scale,
        plan: ServingPlan,
        candidates: Sequence[Candidate],
        chosen: Candidate,
    ) -> ServiceOutcome:
        policy = None if request.center_id else request.policy
        center = chosen.offer.center
        try:
            async with self.db.transaction() as session:
                service = ServiceRow(
                    owner_id=viewer.account_id,
                    model_id=model_id,
                    name=name,
                    state=ServiceState.DEPLOYING,
                    center_id=center.id,
                    protocol=request.protocol,
                    request=request.request,
                    command=plan.command,
                    model_dir=plan.model_dir,
                    min_replicas=scale.min,
                    max_replicas=scale.max,
                    desired_replicas=max(scale.min, 1),
                    target_per_replica=scale.target_per_replica or 1.0,
                    idempotent=request.idempotent,
                    deadline_seconds=request.deadline_seconds,
                    policy=policy,
                    placement=placement_document(policy, candidates, center.id),
                    requests_total=0,
                    price_per_million_tokens=self.policy.price_per_million_tokens or None,
                    idempotency_key=request.idempotency_key,
                    last_seq=0,
                )
                session.add(service)
                await session.flush()
                runner = "the built-in ONNX runner" if plan.builtin else "its serving command"
                rows = [
                    service_store.append_event(
                        session, service, ServiceEventKind.STATE, state=ServiceState.DEPLOYING, message="accepted by the gateway"
                    ),
                    service_store.append_event(
                        session,
                        service,
                        ServiceEventKind.PLACEMENT,
                        message=f"placed on {center.name}: {chosen.reason}; served by {runner}",
                    ),
                ]
                await session.flush()
                records = [ServiceEventRecord.from_row(row) for row in rows]
        except IntegrityError:  # a concurrent twin with the same idempotency key won
            async with self.db.read() as session:
                twin = await service_store.find_by_idempotency_key(session, viewer.account_id, request.idempotency_key or "")
            if twin is None:
                raise
            return ServiceOutcome(service=twin)
        await self.ledger.announce(records)
        self.controller.wake()
        return ServiceOutcome(service=service)

    # ------------------------------------------------------------------ scale and stop

    async def scale(self, viewer: Viewer, global_id: str, scale: Scale) -> ServiceOutcome:
        service = await self.find(viewer, global_id)
        if service is None:
            return _not_found()
        errors = scale_errors(scale)
        if errors:
            return ServiceOutcome(service=service, errors=errors)
        if service.state in ENDED_STATES or service.state == ServiceState.STOPPING:
            return ServiceOutcome(
                service=service, errors=[UserErrorData(f"the service is {service.state}", "SERVICE_STOPPED", ("serviceId",))]
            )

        def rescale(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.state in ENDED_STATES or current.state == ServiceState.STOPPING:
                return change
            target = scale.target_per_replica or current.target_per_replica
            desired = max(scale.min, min(current.desired_replicas, scale.max))
            change.columns.update(min_replicas=scale.min, max_replicas=scale.max, target_per_replica=target)
            if desired != current.desired_replicas:
                change.columns.update(desired_replicas=desired)
            change.event(ServiceEventKind.SCALE, f"scale set to {scale.min}..{scale.max} replicas, target {target:g} in flight per replica")
            return change

        if self.controller.remote.peer_of(service) is not None:
            wanted = {
                "min": scale.min,
                "max": scale.max,
                "targetRequestsPerReplica": scale.target_per_replica or service.target_per_replica,
            }
            try:
                await self.controller.remote.scale(service, wanted)
            except (CenterFault, ConnectorError) as fault:
                message = f"the peer did not take the change: {getattr(fault, 'message', None) or fault}"
                return ServiceOutcome(service=service, errors=[UserErrorData(message, "CENTER_UNAVAILABLE", ("serviceId",))])
        updated, _ = await self.ledger.apply(service.id, rescale)
        self.controller.wake()
        return ServiceOutcome(service=updated)

    async def stop(self, viewer: Viewer, global_id: str) -> ServiceOutcome:
        service = await self.find(viewer, global_id)
        if service is None:
            return _not_found()

        def begin_stop(current: ServiceRow) -> ServiceChange:
            change = ServiceChange()
            if current.state in ENDED_STATES or current.state == ServiceState.STOPPING:
                return change
            # no request is sent to it from now on (nor answered): every replica tells none ready at once
            change.columns.update(desired_replicas=0, ready_replicas=0)
            change.state(ServiceState.STOPPING, "stop requested")
            return change

        updated, _ = await self.ledger.apply(service.id, begin_stop)
        self.controller.active.pop(service.id, None)  # no request is sent to it from now on
        self.controller.wake()
        return ServiceOutcome(service=updated)

    # ------------------------------------------------------------------ invoke

    async def invoke(self, viewer: Viewer, global_id: str, payload: Any) -> Invocation:
        service = await self.find(viewer, global_id, recent=True)
        if service is None:
            return Invocation.refused("no such service", "SERVICE_NOT_FOUND")
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await self.invoke_raw(service, body)

    def _refusal(self, service: ServiceRow, protocol: ServiceProtocol, size: int) -> Invocation | None:
        """Why a request of ``size`` bytes in ``protocol`` is not sent to the service, if it is not."""
        if size > self.policy.max_payload_bytes:
            return Invocation.refused(f"the input is larger than {self.policy.max_payload_bytes} bytes", "PAYLOAD_TOO_LARGE")
        if service.protocol != protocol:
            return wrong_protocol(service)
        if service.state not in SERVING_STATES:
            return Invocation.refused(f"the service is {service.state}, not ready for requests", "SERVICE_NOT_READY")
        return None

    async def invoke_raw(self, service: ServiceRow, body: bytes) -> Invocation:
        """Send ``body`` (JSON) to one of the service's READY replicas and answer what it said."""
        started = time.perf_counter()
        refused = self._refusal(service, ServiceProtocol.INVOKE, len(body))
        if refused is not None:
            return refused
        pool = self.controller.pool(service.id)
        pool.in_flight += 1
        try:
            if self.controller.remote.peer_of(service) is not None:
                answer = await self.controller.remote.invoke(service, body)
            else:
                answer = await self.proxy.send(service, pool, body, self.policy.cold_start_seconds, self.controller.wake)
        finally:
            pool.in_flight -= 1
        await self.controller.tally.count(service.id)
        answer.latency_ms = (time.perf_counter() - started) * 1000.0
        return answer

    async def passthrough(self, service: ServiceRow, request: Passthrough) -> Invocation | Relay:
        """Pass an OPENAI service's request to one of its READY replicas as is; the usage its
        answer reports is counted (with the request) once the answer is over."""
        refused = self._refusal(service, ServiceProtocol.OPENAI, len(request.body))
        if refused is not None:
            return refused
        pool = self.controller.pool(service.id)
        pool.in_flight += 1
        finished = False

        async def done(usage: TokenUsage | None) -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            pool.in_flight -= 1
            await self.controller.tally.count(service.id, usage)

        return await self.proxy.relay(service, pool, request, self.policy.cold_start_seconds, self.controller.wake, done)


def wrong_protocol(service: ServiceRow) -> Invocation:
    base = f"/services/{to_global_id('InferenceService', service.id)}"
    if service.protocol == ServiceProtocol.OPENAI:
        where = f"its OpenAI-compatible API under {base}/v1/ (chat/completions, completions, embeddings, models)"
    else:
        where = f"POST {base}/invoke (or invokeService)"
    return Invocation.refused(f"the service speaks {service.protocol}: send requests to {where}", "WRONG_PROTOCOL")


def _serves(kind: str, plan: ServingPlan | None) -> bool:
    return kind in SERVING_KINDS and (plan is None or plan.builtin or kind not in BUILTIN_ONLY_KINDS)


def _why_not(kind: str) -> str:
    if kind in BUILTIN_ONLY_KINDS:
        return "serves models with the built-in ONNX runner only (deploy an ONNX model without a command)"
    return "cannot serve models"
