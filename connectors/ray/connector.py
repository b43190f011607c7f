"""The RAY center: a Ray cluster behind its Jobs REST API (Ray 2.60).

Every call goes over HTTP to the Ray dashboard through the shared client of
``connectors.http`` (deadlines, transport errors, secret scrubbing), with an optional
``Authorization: Bearer`` token (Ray's ``RAY_AUTH_MODE=token``). The gateway's reference is
the Ray ``submission_id``, so a retried hand-over finds the job it made before. Ray has no
time limit of its own: the gateway's reconciler stops a job at its limit
(``time_limits_by_gateway``), and the entrypoint runs under coreutils ``timeout`` as a backstop
a little later (see ``api.entrypoint``). A started job's log is followed through Ray's WebSocket
tail (``tail.py``), read once: its progress reports and ``read_log`` come from there, never from
the whole log fetched again. An inference replica is a Serve replica instead (``replicas.py``):
its external id starts ``serve:`` and every call about it goes to Serve's REST API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from connectors.base import (
    MAX_LOG_READ_BYTES,
    CenterDescription,
    CenterJobState,
    Connector,
    DeviceCapacity,
    JobSpec,
    JobStatus,
    LogChunk,
    StatusQuery,
    Submission,
)
from connectors.errors import CenterUnreachable, JobNotFound, SubmissionRejected
from connectors.http import HttpClient, HttpFailure, StatusRule, redact
from connectors.ray import api
from connectors.ray.devices import DeviceMap, Unsatisfiable
from connectors.ray.replicas import ServeReplicas, is_replica
from connectors.ray.serve import EXTERNAL_PREFIX, ServeOptions
from connectors.ray.tail import Followers, LogFollower

logger = logging.getLogger(__name__)

#: the bytes of each followed job's log kept for readers (the tail a subscription starts with)
LOG_WINDOW_BYTES = 256 * 1024
#: how long an ended job is still reported RUNNING while the last of its log is on its way
#: (Ray closes the tail about 3 s after the end): its final progress reports come with its end
LOG_DRAIN_SECONDS = 10.0


class RayConnector(Connector):
    kind = "RAY"
    time_limits_by_gateway = True

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        token: str | None = None,
        resource_models: Mapping[str, str] | None = None,
        request_timeout: float = 10.0,
        max_concurrent_requests: int = 4,
        backstop_seconds: float = api.BACKSTOP_SECONDS,
        serve: ServeOptions | None = None,
    ) -> None:
        super().__init__(name)
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self.devices = DeviceMap(resource_models or {})
        self.request_timeout = request_timeout
        self.max_concurrent_requests = max_concurrent_requests
        #: how long past its limit a job's node-side ``timeout`` ends it, should the gateway not have
        self.backstop_seconds = backstop_seconds
        self._http: HttpClient | None = None
        self._followers = Followers(self._new_follower)
        self._running_since: dict[str, datetime] = {}
        self._draining_since: dict[str, float] = {}
        self.replicas = ServeReplicas(name, self._request, serve or ServeOptions(), urlparse(self.base_url).hostname or "127.0.0.1")

    def __repr__(self) -> str:
        return f"RayConnector(name={self.name!r}, base_url={self.base_url!r})"

    async def start(self) -> None:
        self._http = HttpClient(
            self.name,
            "the Ray Jobs API",
            self.base_url,
            timeout=self.request_timeout,
            max_concurrent=self.max_concurrent_requests,
            statuses={
                401: StatusRule(CenterUnreachable, "the Ray dashboard asks for a token (HTTP 401)"),
                403: StatusRule(CenterUnreachable, "the Ray dashboard refused the token (HTTP 403)"),
            },
            scrub=self._scrub,
        )

    async def close(self) -> None:
        await self._followers.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ------------------------------------------------------------------ contract

    async def describe(self) -> CenterDescription:
        body = await self._object("GET", api.VERSION)
        return CenterDescription(kind=self.kind, name=self.name, version=api.ray_version(body), detail={"url": self.base_url})

    async def capacity(self) -> list[DeviceCapacity]:
        nodes, listed = await asyncio.gather(self._nodes(), self._request("GET", api.JOBS))
        try:
            held = api.held_devices(api.parse_jobs(listed))
        except ValueError as error:
            raise CenterUnreachable(f"the Ray Jobs API answered a job list that is not one: {error}", center=self.name) from None
        return self.devices.capacity(nodes, held)

    async def submit(self, spec: JobSpec) -> Submission:
        if is_replica(spec):
            return await self.replicas.submit(spec, self._job_request(spec, await self._nodes()).resources)
        request = self._job_request(spec, await self._nodes())
        try:
            await self._object("POST", api.JOBS, json_body=api.submit_body(request, self.backstop_seconds))
        except HttpFailure as failure:
            # Ray answers a submission_id it has already with HTTP 500 and a long traceback
            # (its "already exists" may lie past the kept text): look the reference up instead
            if failure.status_code >= 500 or api.is_duplicate(failure.text):
                record = await self._job(spec.reference)
                if record is not None and record.state is not None and record.metadata.get(api.META_REFERENCE) == spec.reference:
                    return Submission(record.submission_id, record.state)
            if 400 <= failure.status_code < 500:
                raise SubmissionRejected(f"Ray refused the job: {failure.message}", center=self.name) from None
            raise
        logger.info("RAY center %s: submitted %s", self.name, spec.reference)
        return Submission(spec.reference, CenterJobState.QUEUED)

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        served = [query for query in queries if query.external_id.startswith(EXTERNAL_PREFIX)]
        jobs = [query for query in queries if not query.external_id.startswith(EXTERNAL_PREFIX)]
        found = await asyncio.gather(*(self._status_of(query) for query in jobs))
        answer = {status.external_id: status for status in found if status is not None}
        if served:
            answer.update(await self.replicas.status(served))
        return answer

    async def cancel(self, external_id: str) -> None:
        if external_id.startswith(EXTERNAL_PREFIX):
            await self.replicas.cancel(external_id)
            return
        try:
            await self._object("POST", api.job_path(external_id, "/stop"))
        except HttpFailure as failure:
            if failure.status_code == 404:
                raise JobNotFound(f"no job {external_id} on this center", center=self.name) from None
            raise
        # Ray answers {"stopped": false} for a job that has ended already; a PENDING job
        # stays PENDING until its supervisor starts, then ends STOPPED

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        if external_id.startswith(EXTERNAL_PREFIX):
            return await self.replicas.logs(external_id, tail_lines)
        record = await self._job(external_id)
        if record is None:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        lines = api.job_output(await self._log(external_id), record)
        return "\n".join(lines[-tail_lines:] if tail_lines > 0 else []) + ("\n" if lines and tail_lines > 0 else "")

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        """From the job's follower: offsets count the UTF-8 bytes of the log Ray streams, its own lines included."""
        if external_id.startswith(EXTERNAL_PREFIX):
            return await super().read_log(external_id, offset, max_bytes)  # a Serve replica's output is in Ray's own logs
        follower = self._followers.of(external_id)
        await follower.wait_answered(self.request_timeout / 2)
        if offset < 0:
            await follower.wait_settled(self.request_timeout / 2)
        if follower.missing:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return follower.read(offset, min(max_bytes, MAX_LOG_READ_BYTES))

    async def server_url(self, external_id: str, port: str) -> str:
        """A Serve replica's application behind Serve's HTTP proxy (its port is the center's, not the replica's)."""
        if not external_id.startswith(EXTERNAL_PREFIX):
            return await super().server_url(external_id, port)
        return self.replicas.url(external_id)

    # ------------------------------------------------------------------ jobs

    def _job_request(self, spec: JobSpec, nodes: Sequence[api.NodeResources]) -> api.JobRequest:
        try:
            resources = self.devices.request(nodes, spec.accelerator, spec.devices, spec.cpus, spec.memory_gb)
            api.entrypoint(spec.command, spec.max_duration_seconds)
        except (Unsatisfiable, ValueError) as error:
            raise SubmissionRejected(str(error), center=self.name) from None
        environment = {"PYTHONUNBUFFERED": "1", "AICN_JOB_REFERENCE": spec.reference, "AICN_JOB_NAME": spec.name}
        environment.update(spec.environment)
        bad_names = [key for key in environment if not key or "=" in key or "\0" in key]
        if bad_names or any("\0" in value for value in environment.values()):
            raise SubmissionRejected(f"invalid environment variable names or values: {bad_names}", center=self.name)
        metadata = {api.META_REFERENCE: spec.reference, api.META_NAME: spec.name, api.META_LIMIT: f"{spec.max_duration_seconds:g}"}
        metadata.update({api.META_ACCELERATOR: spec.accelerator, api.META_DEVICES: str(spec.devices)})
        return api.JobRequest(spec.reference, spec.command, spec.max_duration_seconds, environment, metadata, resources)

    async def _status_of(self, query: StatusQuery) -> JobStatus | None:
        record = await self._job(query.external_id)
        state = record.state if record is not None else None
        if record is None or state is None:
            self._forget(query.external_id)
            return None
        progress: tuple[Any, ...] = ()
        ended = state.terminal
        if state is not CenterJobState.QUEUED:
            follower = self._followers.of(record.submission_id)
            progress = follower.cursor.after(query.progress_after)
            if ended and not (follower.done or follower.missing) and self._still_draining(record.submission_id):
                state = CenterJobState.RUNNING  # its last lines (and progress) are on their way: it ends once they are in
        if state is CenterJobState.RUNNING and not ended:
            self._running_since.setdefault(record.submission_id, datetime.now(UTC))
        started = self._running_since.get(record.submission_id) or (record.start_time if state is not CenterJobState.QUEUED else None)
        if ended and started is not None and record.end_time is not None:
            started = min(started, record.end_time)
        if state.terminal:
            self._forget(record.submission_id)
        exit_code = record.exit_code if record.exit_code is not None else (0 if state is CenterJobState.SUCCEEDED else None)
        log = await self._log(record.submission_id) if state.terminal and api.cannot_start_unexplained(record) else ""
        return JobStatus(
            external_id=record.submission_id,
            state=state,
            exit_code=exit_code if state.terminal else None,
            reason=api.failure_reason(record, log) if state.terminal else None,
            started_at=started,
            finished_at=record.end_time if state.terminal else None,
            progress=progress,
        )

    def _still_draining(self, submission_id: str) -> bool:
        since = self._draining_since.setdefault(submission_id, time.monotonic())
        return time.monotonic() - since < LOG_DRAIN_SECONDS

    def _forget(self, submission_id: str) -> None:
        """Drop what the connector knows of a job that ended (its follower stays a while, for readers)."""
        self._running_since.pop(submission_id, None)
        self._draining_since.pop(submission_id, None)

    def _new_follower(self, submission_id: str) -> LogFollower:
        url = "ws" + self.base_url.removeprefix("http") + api.job_path(submission_id, "/logs/tail")
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return LogFollower(url, headers, window=LOG_WINDOW_BYTES, open_timeout=self.request_timeout)

    async def _job(self, submission_id: str) -> api.JobRecord | None:
        try:
            return api.parse_job(await self._object("GET", api.job_path(submission_id)))
        except HttpFailure as failure:
            if failure.status_code == 404:
                return None
            raise

    async def _log(self, submission_id: str) -> str:
        try:
            return api.logs_of(await self._object("GET", api.job_path(submission_id, "/logs")))
        except HttpFailure as failure:
            if failure.status_code == 404:
                return ""
            raise

    async def _nodes(self) -> list[api.NodeResources]:
        body = await self._object("GET", api.CLUSTER_STATUS)
        try:
            nodes = api.parse_nodes(body)
        except ValueError as error:
            raise CenterUnreachable(f"the Ray dashboard answered a cluster status without nodes: {error}", center=self.name) from None
        if not nodes:  # a head just started reports its node once the autoscaler loop ran
            raise CenterUnreachable("the Ray cluster reports no nodes yet", center=self.name)
        return nodes

    # ------------------------------------------------------------------ HTTP

    async def _object(self, method: str, path: str, *, json_body: Any = None) -> dict[str, Any]:
        body = await self._request(method, path, json_body=json_body)
        if not isinstance(body, dict):
            raise CenterUnreachable(f"the Ray Jobs API answered {method} {path} with something that is not a JSON object", center=self.name)
        return body

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None, expect_json: bool = True
    ) -> Any:
        if self._http is None:
            raise CenterUnreachable("the RAY connector is not started", center=self.name)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        return await self._http.request(method, path, json_body=json_body, headers=headers, content=content, expect_json=expect_json)

    def _scrub(self, text: str) -> str:
        return redact(text, (self._token or "",), "<token>")
