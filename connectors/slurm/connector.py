"""The SLURM center: a Slurm cluster behind slurmrestd (API v0.0.38, Slurm 22.05).

Every call goes over HTTP to slurmrestd with the ``X-SLURM-USER-NAME`` and
``X-SLURM-USER-TOKEN`` headers, through the shared client of ``connectors.http``
(deadlines, transport errors, secret scrubbing); nothing runs ``sbatch`` or ``squeue``. The only other
thing the gateway needs is read access to the cluster's shared ``output_dir``, where
each job's output lands as ``<job id>.out`` (slurmrestd cannot return a job's output).

The connector keeps no state of its own: a job Slurm has forgotten (``MinJobAge``
after it ended) is left out of ``status`` like any unknown job, and a submission is
found again by its job name, which carries the gateway's reference.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.base import (
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
from connectors.catalog import CPU_CORE
from connectors.errors import CenterUnreachable, ConnectorError, JobNotFound, SubmissionRejected
from connectors.files import read_file_range, tail_file
from connectors.http import HttpClient, HttpFailure, StatusRule
from connectors.slurm import api
from connectors.slurm.auth import MintedToken, StaticToken, TokenSource
from connectors.slurm.script import batch_script, failure_from_comment, progress_from_comment

logger = logging.getLogger(__name__)

JOB_NAME_PREFIX = "aicn-"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: measured on slurmrestd 22.05 (docs/slurm.md): one GET /job/{id} costs about as much
#: as listing this many jobs in GET /jobs
JOBS_LISTED_PER_SINGLE_GET = 13


class _SlurmFailure(Exception):
    """slurmrestd answered, with an error status; the caller decides what it means."""

    def __init__(self, status_code: int, errors: list[api.SlurmError], text: str) -> None:
        super().__init__(text)
        self.status_code = status_code
        self.errors = errors
        self.text = text

    @property
    def job_not_found(self) -> bool:
        return any(error.number == api.JOB_NOT_FOUND for error in self.errors)

    def describe(self) -> str:
        detail = "; ".join(str(error) for error in self.errors) or self.text[:200].strip() or "no detail"
        return f"HTTP {self.status_code}: {detail}"


class SlurmConnector(Connector):
    kind = "SLURM"

    def __init__(
        self,
        name: str,
        base_url: str,
        user_name: str,
        *,
        token: str | None = None,
        jwt_key_file: str | Path | None = None,
        token_lifespan: int = 600,
        partition: str | None = None,
        output_dir: str | Path = "/tmp/aicn-slurm",
        working_dir: str | Path | None = None,
        gres_models: Mapping[str, str] | None = None,
        request_timeout: float = 10.0,
        progress_interval: float = 1.0,
        default_path: str = DEFAULT_PATH,
        scontrol: str = "scontrol",
        max_concurrent_requests: int = 4,
    ) -> None:
        """``gres_models`` maps a Slurm GRES (``"a100"``, ``"gpu:a100"`` or untyped ``"gpu"``)
        to a catalog model; GRES it does not map are not reported and cannot be asked for."""
        super().__init__(name)
        if (token is None) == (jwt_key_file is None):
            raise ValueError("give exactly one of token and jwt_key_file")
        self.base_url = base_url.rstrip("/")
        self.user_name = user_name
        self._token: TokenSource = (
            StaticToken(token)
            if token is not None
            else MintedToken(Path(jwt_key_file or ""), user_name, lifespan=token_lifespan, margin=min(60, token_lifespan // 4))
        )
        self.partition = partition
        self.output_dir = Path(output_dir)
        self.working_dir = Path(working_dir) if working_dir is not None else self.output_dir
        self.gres_models = dict(gres_models or {})
        self.request_timeout = request_timeout
        self.progress_interval = progress_interval
        self.default_path = default_path
        self.scontrol = scontrol
        self.max_concurrent_requests = max_concurrent_requests
        self._http: HttpClient | None = None
        self._default_partition: str | None = None
        self._cluster_jobs: int | None = None  # jobs in the last GET /jobs answer
        self._submit_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        return f"SlurmConnector(name={self.name!r}, base_url={self.base_url!r}, user_name={self.user_name!r})"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._http = HttpClient(
            self.name,
            "slurmrestd",
            self.base_url,
            prefix=api.API_PREFIX,
            timeout=self.request_timeout,
            max_concurrent=self.max_concurrent_requests,
            statuses={
                401: StatusRule(CenterUnreachable, f"slurmrestd refused the credentials of user {self.user_name!r} (HTTP 401)"),
                404: StatusRule(CenterUnreachable, f"slurmrestd at {self.base_url} does not serve {api.API_PREFIX} (HTTP 404)"),
            },
            scrub=self._scrub,
        )
        await asyncio.to_thread(self._prepare_output_dir)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _prepare_output_dir(self) -> None:
        """Create the shared output directory world-writable, when this host can (best effort).

        An existing directory is left as the operator made it."""
        try:
            if not self.output_dir.exists():
                self.output_dir.mkdir(parents=True)
                self.output_dir.chmod(0o1777)  # jobs run as the token's user, not the gateway's
        except OSError as error:
            logger.warning("SLURM center %s: cannot prepare %s: %s", self.name, self.output_dir, error.strerror)

    # ------------------------------------------------------------------ contract

    async def describe(self) -> CenterDescription:
        body = await self._checked("GET", "/ping")
        pings = api.parse_pings(body)
        if not any(ping.up for ping in pings):
            raise CenterUnreachable("slurmrestd answers but no slurmctld does", center=self.name)
        return CenterDescription(
            kind=self.kind,
            name=self.name,
            version=api.release_of(body),
            detail={
                "api": api.API_VERSION,
                "url": self.base_url,
                "controllers": [f"{ping.hostname} ({ping.mode}, {'UP' if ping.up else 'DOWN'})" for ping in pings],
            },
        )

    async def capacity(self) -> list[DeviceCapacity]:
        nodes, partition = await self._nodes_of_partition()
        usable = [node for node in nodes if node.usable]
        entries = [
            DeviceCapacity(
                accelerator=CPU_CORE,
                devices_total=sum(node.cpus for node in usable),
                devices_free=sum(min(node.idle_cpus, node.cpus) for node in usable),
                partition=partition,
            )
        ]
        totals: dict[str, int] = {}
        used: dict[str, int] = {}
        for node in usable:
            for gres in node.gres:
                model = self._model_of(gres)
                if model is not None:
                    totals[model] = totals.get(model, 0) + gres.count
            for gres in node.gres_used:
                model = self._model_of(gres)
                if model is not None:
                    used[model] = used.get(model, 0) + gres.count
        for model in sorted(totals):
            free = max(0, totals[model] - used.get(model, 0))
            entries.append(DeviceCapacity(model, totals[model], free, partition))
        return entries

    async def submit(self, spec: JobSpec) -> Submission:
        job_name = JOB_NAME_PREFIX + spec.reference
        lock = self._submit_locks.setdefault(spec.reference, asyncio.Lock())
        async with lock:
            existing = await self._find_submitted(job_name)
            if existing is not None:  # the same reference twice is the same job
                return Submission(existing.job_id, api.job_outcome(existing).state)
            request = await self._job_request(spec, job_name)
            try:
                body = await self._request("POST", "/job/submit", json_body=api.job_submit_body(request))
            except _SlurmFailure as failure:
                if _is_refusal(failure):
                    raise SubmissionRejected(self._scrub(f"Slurm refused the job: {failure.describe()}"), center=self.name) from None
                raise self._unavailable(failure) from None
            job_id = api.submitted_job_id(body)
            if job_id is None:
                raise CenterUnreachable(f"slurmrestd accepted the job but named no job id: {_errors_text(body)}", center=self.name)
            if api.errors_of(body):
                logger.info("SLURM center %s: job %s accepted with: %s", self.name, job_id, _errors_text(body))
            logger.info("SLURM center %s: submitted %s as job %s", self.name, spec.reference, job_id)
            return Submission(job_id, CenterJobState.QUEUED)

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        wanted = {query.external_id: query.progress_after for query in queries if _is_job_id(query.external_id)}
        if not wanted:
            return {}
        if _listing_is_cheaper(len(wanted), self._cluster_jobs):
            records = await self._list_jobs()
        else:
            found = await asyncio.gather(*(self._get_job(job_id) for job_id in wanted), return_exceptions=True)
            for outcome in found:
                if isinstance(outcome, BaseException):
                    raise outcome
            records = [record for record in found if isinstance(record, api.JobRecord)]
        answer: dict[str, JobStatus] = {}
        for record in records:
            if record.job_id in wanted:
                answer[record.job_id] = _job_status(record, wanted[record.job_id])
        return answer

    async def cancel(self, external_id: str) -> None:
        if not _is_job_id(external_id):
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        try:
            await self._request("DELETE", f"/job/{external_id}")
        except _SlurmFailure as failure:
            if failure.job_not_found:
                raise JobNotFound(f"no job {external_id} on this center", center=self.name) from None
            raise self._unavailable(failure) from None
        # DELETE on a job that already ended is a no-op for Slurm too

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        if not _is_job_id(external_id):
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        path = self.output_dir / f"{external_id}.out"
        if await asyncio.to_thread(path.exists):
            return await asyncio.to_thread(tail_file, path, tail_lines)
        if await self._get_job(external_id) is None:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return ""  # known, but nothing written yet

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        if not _is_job_id(external_id):
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        path = self.output_dir / f"{external_id}.out"
        chunk = await asyncio.to_thread(read_file_range, path, offset, max_bytes)
        if chunk.data:
            return chunk
        if await asyncio.to_thread(path.exists):
            return chunk
        if await self._get_job(external_id) is None:
            raise JobNotFound(f"no job {external_id} on this center", center=self.name)
        return chunk  # known, but nothing written yet

    # ------------------------------------------------------------------ jobs

    async def _find_submitted(self, job_name: str) -> api.JobRecord | None:
        matching = api.jobs_named(await self._list_jobs(), job_name, self.user_name)
        return matching[0] if matching else None

    async def _list_jobs(self) -> list[api.JobRecord]:
        records = api.parse_jobs(await self._checked("GET", "/jobs"))
        self._cluster_jobs = len(records)
        return records

    async def _get_job(self, job_id: str) -> api.JobRecord | None:
        try:
            body = await self._request("GET", f"/job/{job_id}")
        except _SlurmFailure as failure:
            if failure.job_not_found:
                return None
            raise self._unavailable(failure) from None
        # an array job answers with its tasks too; only the job itself is asked for
        return next((record for record in api.parse_jobs(body) if record.job_id == job_id), None)

    async def _job_request(self, spec: JobSpec, job_name: str) -> api.JobRequest:
        """The batch job for ``spec``, or SubmissionRejected when the cluster cannot run it."""
        if spec.devices < 1:
            raise SubmissionRejected("a job needs at least one device", center=self.name)
        try:
            script = batch_script(spec.command, interval=self.progress_interval, scontrol=self.scontrol)
        except ValueError as error:
            raise SubmissionRejected(str(error), center=self.name) from None
        environment = {
            "PATH": self.default_path,
            "PYTHONUNBUFFERED": "1",
            "AICN_JOB_REFERENCE": spec.reference,
            "AICN_JOB_NAME": spec.name,
        }
        environment.update(spec.environment)
        bad_names = [key for key in environment if not key or "=" in key or "\0" in key]
        if bad_names or any("\0" in value for value in environment.values()):
            raise SubmissionRejected(f"invalid environment variable names or values: {bad_names}", center=self.name)

        nodes, partition = await self._nodes_of_partition(spec.partition)
        if not nodes:
            raise SubmissionRejected(f"the partition {partition!r} has no nodes on this center", center=self.name)
        largest, gres = self._largest_node_offer(nodes, spec.accelerator)
        if largest == 0:
            raise SubmissionRejected(f"this center has no {spec.accelerator} devices", center=self.name)
        if spec.devices > largest:
            raise SubmissionRejected(
                f"the job asks for {spec.devices} {spec.accelerator} devices on one node; the largest node of this center has {largest}",
                center=self.name,
            )
        cpus = spec.devices if gres is None else max(1, spec.cpus or 1)
        return api.JobRequest(
            name=job_name,
            script=script,
            environment=environment,
            working_directory=str(self.working_dir),
            standard_output=str(self.output_dir / "%j.out"),
            time_limit_minutes=api.time_limit_minutes(spec.max_duration_seconds),
            cpus_per_task=cpus,
            partition=partition,
            memory_mb=math.ceil(spec.memory_gb * 1024) if spec.memory_gb else None,
            gres=f"{gres}:{spec.devices}" if gres is not None else None,
        )

    def _largest_node_offer(self, nodes: Sequence[api.NodeInfo], accelerator: str) -> tuple[int, str | None]:
        """The most devices of ``accelerator`` one node has (in any state), and the GRES to ask for."""
        if accelerator == CPU_CORE:
            return max((node.cpus for node in nodes), default=0), None
        largest, request = 0, None
        for node in nodes:
            for gres in node.gres:
                if self._model_of(gres) == accelerator and gres.count > largest:
                    largest = gres.count
                    request = f"{gres.name}:{gres.type}" if gres.type else gres.name
        return largest, request

    def _model_of(self, gres: api.GresCount) -> str | None:
        """The catalog model a node's GRES is, by the operator's mapping; None when unmapped."""
        if gres.type is not None:
            return self.gres_models.get(f"{gres.name}:{gres.type}") or self.gres_models.get(gres.type)
        return self.gres_models.get(gres.name)

    async def _nodes_of_partition(self, partition: str | None = None) -> tuple[list[api.NodeInfo], str | None]:
        chosen = partition or self.partition or await self._cluster_default_partition()
        nodes = api.parse_nodes(await self._checked("GET", "/nodes"))
        if chosen is not None:
            nodes = [node for node in nodes if chosen in node.partitions]
        return nodes, chosen

    async def _cluster_default_partition(self) -> str | None:
        if self._default_partition is None:
            self._default_partition = api.default_partition(await self._checked("GET", "/partitions"))
        return self._default_partition

    # ------------------------------------------------------------------ HTTP

    async def _checked(self, method: str, path: str) -> dict[str, Any]:
        """A request whose every error status means the center is not usable right now."""
        try:
            return await self._request(method, path)
        except _SlurmFailure as failure:
            raise self._unavailable(failure) from None

    async def _request(self, method: str, path: str, *, json_body: Any = None) -> dict[str, Any]:
        if self._http is None:
            raise CenterUnreachable("the SLURM connector is not started", center=self.name)
        headers = {"X-SLURM-USER-NAME": self.user_name, "X-SLURM-USER-TOKEN": await self._current_token()}
        try:
            return await self._http.request_object(method, path, json_body=json_body, headers=headers)
        except HttpFailure as failure:
            raise _SlurmFailure(failure.status_code, api.errors_of(failure.body), failure.text) from None

    async def _current_token(self) -> str:
        try:
            return self._token.current()
        except OSError as error:
            # a MintedToken reads the key file; the message names the file, never its content
            raise CenterUnreachable(f"cannot read the Slurm JWT key: {error.strerror}: {error.filename}", center=self.name) from None

    def _unavailable(self, failure: _SlurmFailure) -> ConnectorError:
        message = f"slurmrestd answered {self._scrub(failure.describe())}"
        if any(error.number in (-1, 1007, 5005) for error in failure.errors):
            # 22.05 answers a bad or expired token with 500 and an unspecific error
            message += " (slurmrestd 22.05 answers this way when the token is invalid or expired, or slurmctld is down)"
        return CenterUnreachable(message, center=self.name)

    def _scrub(self, text: str) -> str:
        return self._token.redact(text)


def _is_refusal(failure: _SlurmFailure) -> bool:
    """Slurm understood the submission and said no (bad partition, too large, ...)."""
    if failure.status_code == 400:
        return True
    return any(error.number is not None and error.number > 0 and error.number not in (1007, 5005) for error in failure.errors)


def _errors_text(body: Any) -> str:
    return "; ".join(str(error) for error in api.errors_of(body)) or "no detail"


def _is_job_id(external_id: str) -> bool:
    return external_id.isascii() and external_id.isdigit() and 0 < int(external_id) < 2**32


def _listing_is_cheaper(wanted: int, cluster_jobs: int | None) -> bool:
    """One GET /jobs, or one GET /job/{id} per job: whichever costs slurmrestd less."""
    if cluster_jobs is None:
        return True  # learn the cluster's size
    return wanted > 1 + cluster_jobs / JOBS_LISTED_PER_SINGLE_GET


def _job_status(record: api.JobRecord, progress_after: int) -> JobStatus:
    outcome = api.job_outcome(record)
    reason = outcome.reason
    if outcome.state is CenterJobState.FAILED and outcome.exit_code == 127:
        reason = failure_from_comment(record.comment) or reason
    return JobStatus(
        external_id=record.job_id,
        state=outcome.state,
        exit_code=outcome.exit_code,
        reason=reason,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        progress=progress_from_comment(record.comment, progress_after),
    )
