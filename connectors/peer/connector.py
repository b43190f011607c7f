"""A PEER center: another aicn gateway, its whole network seen as one center.

* ``capacity`` and ``quote`` are the peer's ``computeUnits`` and ``offers``, per device model,
  at the peer's price per standard-unit-hour plus this center's ``markup``;
* ``submit`` is the peer's ``submitJob`` with the job's reference as its idempotency key, so a
  hand-over retried after a crash or a lost answer finds the job it made, never a second one;
  the path of gateways goes along (``aicn-via``) and a peer already on it refuses (PEER_LOOP);
* ``status`` answers from what the live link (one graphql-transport-ws connection carrying a
  ``jobEvents`` subscription per job) has delivered, and polls the peer's graph for the jobs the
  link is not current on (it is down, or has just subscribed again);
* ``cancel``, ``logs`` and ``charges`` (the peer's own usage records) go through the peer's graph;
* an inference service at the peer is followed over the same link (a ``serviceEvents``
  subscription per service, resumed with ``after``): each event marks its ``ServiceView``
  changed and calls ``on_service_activity``, so the service controller reads it at once.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.base import (
    MAX_LOG_READ_BYTES,
    CenterDescription,
    CenterJobState,
    CenterQuote,
    Connector,
    DeviceCapacity,
    JobSpec,
    JobStatus,
    LogChunk,
    QuoteRequest,
    StatusQuery,
    Submission,
)
from connectors.errors import CenterUnreachable, JobNotFound, SubmissionRejected
from connectors.hops import VIA
from connectors.peer import documents
from connectors.peer.client import PeerGraph, PeerLoop
from connectors.peer.link import JOBS, SERVICES, Feed, LiveLink
from connectors.peer.services import PeerServices
from connectors.peer.views import STATES, JobView, ServiceView

#: jobs asked about in one poll of the peer's graph
POLL_BATCH = 20
#: even a live link is checked against the peer's graph this often: a job the peer forgot sends no event
RESYNC_SECONDS = 5.0


class PeerConnector(Connector):
    kind = "PEER"
    quotes_itself = True

    def __init__(
        self,
        name: str,
        url: str,
        token: str,
        *,
        gateway_id: str,
        markup: Decimal = Decimal(0),
        request_timeout: float = 10.0,
        reconnect_seconds: float = 0.5,
    ) -> None:
        super().__init__(name)
        self.url = url
        self.gateway_id = gateway_id
        self.markup = markup
        self.graph = PeerGraph(name, url, token, timeout=request_timeout)
        #: inference services deployed at the peer (its graph and its invoke route)
        self.services = PeerServices(self.graph, timeout=request_timeout)
        self.views: dict[str, JobView] = {}
        self.service_views: dict[str, ServiceView] = {}
        #: called when an event of a followed service arrives (the service controller's wake)
        self.on_service_activity: Callable[[], None] | None = None
        jobs = Feed(
            documents.EVENTS,
            "jobEvents",
            position=lambda external_id: self._view(external_id).last_seq,
            on_event=self._on_event,
            on_gone=self._on_gone,
            on_subscribed=self._on_subscribed,
        )
        services = Feed(
            documents.SERVICE_EVENTS,
            "serviceEvents",
            position=lambda remote_id: self.service_view(remote_id).last_seq,
            on_event=self._on_service_event,
            on_gone=self._on_service_gone,
            on_subscribed=self._on_service_subscribed,
        )
        self.link = LiveLink(
            name,
            url.replace("https://", "wss://", 1).replace("http://", "ws://", 1),
            token,
            feeds={JOBS: jobs, SERVICES: services},
            reconnect_seconds=reconnect_seconds,
        )
        self.polls = 0  # how many polls the link could not spare (a measure of the fallback)
        self._synced_at = time.monotonic()

    def __repr__(self) -> str:
        return f"PeerConnector(name={self.name!r}, url={self.url!r})"

    async def start(self) -> None:
        self.link.start()

    async def close(self) -> None:
        await self.link.close()
        await self.services.aclose()
        await self.graph.aclose()

    # ------------------------------------------------------------------ the peer's network

    def via(self) -> tuple[str, ...]:
        return self._via()

    def _via(self) -> tuple[str, ...]:
        """The path of this call: the gateways the request being served came through, then this one."""
        return (*VIA.get(), self.gateway_id)

    async def describe(self) -> CenterDescription:
        data = await self.graph.run(documents.DESCRIBE)
        gateway = data.get("gateway") or {}
        account = (data.get("viewer") or {}).get("name")
        return CenterDescription(
            kind=self.kind,
            name=self.name,
            version=gateway.get("version"),
            detail={"url": self.url, "account": account, "gatewayId": gateway.get("id")},
        )

    def _price(self, unit: dict[str, Any] | None) -> Decimal | None:
        amount = ((unit or {}).get("pricePerUnitHour") or {}).get("amount")
        return Decimal(str(amount)) + self.markup if amount is not None else None

    async def capacity(self) -> list[DeviceCapacity]:
        try:
            data = await self.graph.run(documents.COMPUTE_UNITS, via=self._via())
        except PeerLoop:
            return []  # the peer is already on this request's path: its network is counted there
        totals: dict[str, DeviceCapacity] = {}
        for edge in (data.get("computeUnits") or {}).get("edges") or []:
            unit = edge["node"]
            model = unit["accelerator"]["model"]
            price = self._price(unit)
            seen = totals.get(model)
            if seen is None:
                totals[model] = DeviceCapacity(model, unit["devicesTotal"], unit["devicesAvailable"], None, price)
            else:
                cheapest = min((p for p in (seen.price_per_unit_hour, price) if p is not None), default=None)
                totals[model] = DeviceCapacity(
                    model, seen.devices_total + unit["devicesTotal"], seen.devices_free + unit["devicesAvailable"], None, cheapest
                )
        return list(totals.values())

    async def quote(self, request: QuoteRequest) -> CenterQuote | None:
        fields = {
            "maxDurationMinutes": request.max_duration_minutes,
            "accelerator": request.accelerator,
            "devices": request.devices,
            "standardUnits": request.standard_units,
            "cpus": request.cpus,
            "memoryGb": request.memory_gb,
        }
        variables = {"request": {key: value for key, value in fields.items() if value is not None}, "policy": request.policy}
        try:
            data = await self.graph.run(documents.OFFERS, variables, via=self._via())
        except PeerLoop as loop:
            return CenterQuote("", 0, 0, 0, None, False, f"PEER_LOOP: the peer is already on this request's path ({loop.message})")
        offers = data.get("offers") or []
        if not offers:
            return CenterQuote("", 0, 0, 0, None, False, "NO_SUCH_DEVICE: the peer's network has no center for this request")
        best = offers[0]
        unit = best.get("computeUnit")
        start = best.get("estimatedStart")
        return CenterQuote(
            accelerator=(unit or {}).get("accelerator", {}).get("model", ""),
            devices=int(best.get("devices") or 0),
            devices_total=int((unit or {}).get("devicesTotal") or 0),
            devices_free=int((unit or {}).get("devicesAvailable") or 0),
            price_per_unit_hour=self._price(unit),
            feasible=bool(best.get("feasible")),
            reason=best.get("reason"),
            estimated_start=datetime.fromisoformat(start) if start else None,
        )

    # ------------------------------------------------------------------ jobs

    async def submit(self, spec: JobSpec) -> Submission:
        request: dict[str, Any] = {"maxDurationMinutes": spec.max_duration_seconds / 60.0, "accelerator": spec.accelerator}
        request["devices"] = spec.devices
        if spec.memory_gb is not None:
            request["memoryGb"] = spec.memory_gb
        payload = {
            # the peer learns the origin's opaque reference, not the user's name for the job
            "name": spec.reference,
            "command": list(spec.command),
            "request": request,
            "environment": dict(spec.environment),
            # the job's reference is unique and stable: a retried hand-over is the same submission
            "idempotencyKey": spec.reference,
        }
        data = await self.graph.run(documents.SUBMIT, {"input": payload}, via=spec.via or self._via())
        answer = data.get("submitJob") or {}
        problems = answer.get("userErrors") or []
        job = answer.get("job")
        if problems or not job:
            reason = "; ".join(f"{p.get('code')}: {p.get('message')}" for p in problems) or "the peer made no job"
            raise SubmissionRejected(self.graph.scrub(reason), center=self.name)
        external_id = str(job["id"])
        view = self._view(external_id)
        await self.link.follow(external_id)
        state = STATES.get(str(job.get("state")), CenterJobState.QUEUED)
        view.state = state if not view.last_seq else view.state
        return Submission(external_id, state if state in (CenterJobState.QUEUED, CenterJobState.STARTING) else CenterJobState.QUEUED)

    def _view(self, external_id: str) -> JobView:
        view = self.views.get(external_id)
        if view is None:
            view = self.views[external_id] = JobView(external_id)
        return view

    def _on_event(self, external_id: str, event: dict[str, Any]) -> None:
        view = self._view(external_id)
        if not view.apply_event(event) and int(event.get("seq") or 0) > view.last_seq:
            view.live = False  # a gap: the next status call polls to fill it
        job = event.get("job")
        if isinstance(job, dict):
            view.apply_job(job)
        if view.ended:
            # a subscription's job fields may be as its first event read them: the end is read afresh
            view.known = False
        if self.on_activity is not None:
            self.on_activity()

    def _on_gone(self, external_id: str) -> None:
        self._view(external_id).missing = True

    # ------------------------------------------------------------------ services, followed over the link

    def service_view(self, remote_id: str) -> ServiceView:
        view = self.service_views.get(remote_id)
        if view is None:
            view = self.service_views[remote_id] = ServiceView(remote_id)
        return view

    async def follow_service(self, remote_id: str) -> ServiceView:
        """The service's view, its ``serviceEvents`` subscription asked for (once) on the link."""
        view = self.service_view(remote_id)
        if not view.missing:
            await self.link.follow(remote_id, SERVICES)
        return view

    def following_service(self, remote_id: str) -> bool:
        """True while the link carries the service's subscription: its events arrive as they happen."""
        return self.link.following(remote_id, SERVICES)

    def forget_service(self, remote_id: str) -> None:
        self.link.forget(remote_id, SERVICES)
        self.service_views.pop(remote_id, None)

    def _on_service_event(self, remote_id: str, event: dict[str, Any]) -> None:
        if self.service_view(remote_id).apply_event(event) and self.on_service_activity is not None:
            self.on_service_activity()

    def _on_service_gone(self, remote_id: str) -> None:
        self.service_view(remote_id).missing = True

    def _on_service_subscribed(self, remote_id: str) -> None:
        # subscribed again (a new service, or the link came back): what it missed is replayed; read once too
        self.service_view(remote_id).changed = True

    def _on_subscribed(self, external_id: str) -> None:
        self._view(external_id).live = False

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        asked = {query.external_id for query in queries}
        for external_id in asked:
            view = self._view(external_id)
            if not view.ended and not view.missing:
                await self.link.follow(external_id)
        views = [self.views[i] for i in sorted(asked)]
        if time.monotonic() - self._synced_at >= RESYNC_SECONDS:
            self._synced_at = time.monotonic()
            stale = [view for view in views if not view.ended]
        else:
            stale = [view for view in views if not view.missing and not self._current(view)]
        if stale:
            await self._poll(stale)
        for external_id in [i for i, view in self.views.items() if i not in asked and (view.ended or view.missing)]:
            del self.views[external_id]  # the gateway has what it needs of it
        answer: dict[str, JobStatus] = {}
        for query in queries:
            view = self.views[query.external_id]
            if not view.missing:
                answer[query.external_id] = view.status(query.progress_after)
        return answer

    def _current(self, view: JobView) -> bool:
        """True when the view needs no poll: it has ended, or the link is current on it."""
        return (view.ended and view.known) or (view.live and self.link.following(view.external_id))

    async def _poll(self, views: Sequence[JobView]) -> None:
        self.polls += 1
        for start in range(0, len(views), POLL_BATCH):
            batch = list(views[start : start + POLL_BATCH])
            subscribed = {view.external_id for view in batch if self.link.following(view.external_id)}
            variables: dict[str, Any] = {}
            for index, view in enumerate(batch):
                variables[f"id{index}"] = view.external_id
                variables[f"after{index}"] = view.last_seq
            data = await self.graph.run(documents.poll_document(len(batch)), variables)
            for index, view in enumerate(batch):
                job = data.get(f"j{index}")
                if not job:
                    view.missing = True
                    continue
                events = job.get("events") or {}
                for edge in events.get("edges") or []:
                    view.apply_event(edge["node"])
                view.apply_job(job)
                complete = not (events.get("pageInfo") or {}).get("hasNextPage")
                # current now, and the link (subscribed before this poll began) brings what follows
                view.live = complete and view.external_id in subscribed

    async def cancel(self, external_id: str) -> None:
        data = await self.graph.run(documents.CANCEL, {"input": {"jobId": external_id}})
        problems = (data.get("cancelJob") or {}).get("userErrors") or []
        codes = {problem.get("code") for problem in problems}
        if "JOB_NOT_FOUND" in codes:
            raise JobNotFound(f"the peer does not know job {external_id}", center=self.name)
        if codes - {"JOB_ALREADY_FINISHED"}:
            raise CenterUnreachable(self.graph.scrub("; ".join(str(p.get("message")) for p in problems)), center=self.name)

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        data = await self.graph.run(documents.LOGS, {"id": external_id, "tail": tail_lines})
        job = data.get("node")
        if not job:
            raise JobNotFound(f"the peer does not know job {external_id}", center=self.name)
        return str(job.get("logs") or "")

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        wanted = max(1, min(max_bytes, MAX_LOG_READ_BYTES))
        data = await self.graph.run(documents.LOG_BYTES, {"id": external_id, "offset": str(offset), "max": wanted})
        job = data.get("node")
        if not job:
            raise JobNotFound(f"the peer does not know job {external_id}", center=self.name)
        chunk = job.get("logBytes")
        if not chunk:  # not at a center yet there: nothing written
            start = max(0, offset)
            return LogChunk(b"", start, start)
        return LogChunk(base64.b64decode(chunk["data"]), int(chunk["start"]), int(chunk["nextOffset"]))

    async def charges(self, external_ids: Sequence[str]) -> dict[str, Decimal] | None:
        charged: dict[str, Decimal] = {}
        ids = list(external_ids)
        for start in range(0, len(ids), 100):
            data = await self.graph.run(documents.CHARGES, {"ids": ids[start : start + 100]})
            for job in data.get("nodes") or []:
                amount = ((job or {}).get("usage") or {}).get("amount") or {}
                if job and amount.get("amount") is not None:
                    charged[str(job["id"])] = Decimal(str(amount["amount"]))
        return charged
