"""Inference replicas on a RAY center: one Ray Serve application per service, one Serve replica per
gateway replica (see ``serve.py`` for the REST API's shape).

The gateway sees each replica as a job: ``submit`` adds its reference to the application (made on
the first), ``status`` reports it RUNNING once Serve runs as many replicas as its place in the list,
``cancel`` takes it out (the application is deleted with the last one). An application Serve could
not deploy fails every replica in it with its reason and is removed. Replicas that ended are
remembered here for the reconciler's next look (they are no longer anywhere in Serve).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import CenterJobState, JobSpec, JobStatus, StatusQuery, Submission
from connectors.errors import CenterUnreachable, JobNotFound, SubmissionRejected
from connectors.http import HttpFailure
from connectors.ray import serve
from connectors.ray.api import Resources
from connectors.serving import ONNX_SERVER

logger = logging.getLogger(__name__)

#: the environment variables the gateway gives a replica: which service it serves, from which model files
SERVICE_KEY = "AICN_SERVICE_KEY"
MODEL_DIR = "AICN_MODEL_DIR"
#: how many ended replicas are remembered for the reconciler (it looks within seconds)
ENDED_KEPT = 10_000

Request = Callable[..., Awaitable[Any]]


def is_replica(spec: JobSpec) -> bool:
    return SERVICE_KEY in spec.environment


def _failed_ours(application: serve.Application) -> bool:
    return application.failed and application.name.startswith(serve.APP_PREFIX) and bool(application.references)


class ServeReplicas:
    def __init__(self, center: str, request: Request, options: serve.ServeOptions, dashboard_host: str) -> None:
        self.center = center
        self._request = request
        self.options = options
        self._dashboard_host = dashboard_host
        #: one change of the Serve config at a time: every PUT is the whole config, read just before
        self._lock = asyncio.Lock()
        self._running_since: dict[str, datetime] = {}
        self._ended: OrderedDict[str, JobStatus] = OrderedDict()
        #: the port Serve's proxy really listens on (its options are fixed when Serve starts)
        self._port: int | None = None

    # ------------------------------------------------------------------ the connector's calls

    async def submit(self, spec: JobSpec, resources: Resources) -> Submission:
        if len(spec.command) < 2 or spec.command[1] != str(ONNX_SERVER):
            raise SubmissionRejected(
                "a RAY center serves models with the built-in ONNX runner only (deploy without a command)", center=self.center
            )
        model_dir = spec.environment.get(MODEL_DIR)
        if not model_dir:
            raise SubmissionRejected("the replica names no model directory", center=self.center)
        app = serve.app_name(spec.environment[SERVICE_KEY])
        external_id = serve.external_id(app, spec.reference)
        async with self._lock:
            applications = await self._applications()
            current = applications.get(app)
            if current is not None and current.failed:
                self._fail(current)
                current = None
            elif current is not None and current.deleting:
                current = None  # its last replica was just taken out: a new one makes it again
            if current is not None and spec.reference in current.references:
                return Submission(external_id, CenterJobState.QUEUED)  # a retried hand-over
            if current is None:
                package = await self._upload()
                config = serve.app_config(app, model_dir, package, [spec.reference], resources, self.options)
            else:
                config = serve.with_references(current.config, [*current.references, spec.reference])
            await self._deploy(applications, app, config)
        logger.info("RAY center %s: replica %s added to Serve application %s", self.center, spec.reference, app)
        return Submission(external_id, CenterJobState.QUEUED)

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        applications = await self._applications()
        if any(_failed_ours(application) for application in applications.values()):
            async with self._lock:
                applications = await self._applications()
                for application in [application for application in applications.values() if _failed_ours(application)]:
                    self._fail(application)
                    try:
                        applications = await self._deploy(applications, application.name, None)
                    except SubmissionRejected as refused:  # its replicas have failed all the same; removed next time
                        logger.warning("RAY center %s: removing the failed application %s: %s", self.center, application.name, refused)
        found: dict[str, JobStatus] = {}
        for query in queries:
            status = self._status_of(query.external_id, applications)
            if status is not None:
                found[query.external_id] = status
        return found

    async def cancel(self, external_id: str) -> None:
        app, reference = self._parse(external_id)
        async with self._lock:
            applications = await self._applications()
            current = applications.get(app)
            if current is None or reference not in current.references:
                if external_id in self._ended:
                    return  # ended already
                raise JobNotFound(f"no replica {reference} in Serve application {app}", center=self.center)
            left = [other for other in current.references if other != reference]
            await self._deploy(applications, app, serve.with_references(current.config, left) if left else None)
            self._end(
                external_id,
                JobStatus(external_id, CenterJobState.CANCELLED, reason="CANCELLED: the replica was taken out of its Serve application"),
            )
        logger.info("RAY center %s: replica %s taken out of Serve application %s", self.center, reference, app)

    async def logs(self, external_id: str, tail_lines: int) -> str:
        app, reference = self._parse(external_id)
        ended = self._ended.get(external_id)
        if ended is not None:
            lines = [ended.reason or str(ended.state.value)]
        else:
            current = (await self._applications()).get(app)
            if current is None or reference not in current.references:
                raise JobNotFound(f"no replica {reference} in Serve application {app}", center=self.center)
            lines = [f"Serve application {app}: {current.status}, {current.running} of {len(current.references)} replicas running"]
            lines += [line for line in (current.deployment_message or current.message).splitlines() if line.strip()]
        kept = lines[-tail_lines:] if tail_lines > 0 else []
        return "\n".join(kept) + ("\n" if kept else "")

    def url(self, external_id: str) -> str:
        app, _ = self._parse(external_id)
        host = self.options.host if self.options.host not in ("0.0.0.0", "::", "") else self._dashboard_host
        return f"http://{host}:{self._port or self.options.port}{serve.route_prefix(app)}"

    # ------------------------------------------------------------------ Serve

    def _parse(self, external_id: str) -> tuple[str, str]:
        parsed = serve.parse_external_id(external_id)
        if parsed is None:
            raise JobNotFound(f"{external_id!r} is no Serve replica", center=self.center)
        return parsed

    def _status_of(self, external_id: str, applications: Mapping[str, serve.Application]) -> JobStatus | None:
        ended = self._ended.get(external_id)
        if ended is not None:
            return ended
        parsed = serve.parse_external_id(external_id)
        current = applications.get(parsed[0]) if parsed is not None else None
        if parsed is None or current is None or parsed[1] not in current.references:
            return None  # the reconciler decides what a vanished replica means
        if current.running > current.references.index(parsed[1]):
            started = self._running_since.setdefault(external_id, datetime.now(UTC))
            return JobStatus(external_id, CenterJobState.RUNNING, started_at=started)
        return JobStatus(external_id, CenterJobState.STARTING, started_at=self._running_since.get(external_id))

    def _fail(self, application: serve.Application) -> None:
        reason = f"SERVE_DEPLOY_FAILED: Ray Serve could not deploy the model: {application.why}"
        for reference in application.references:
            external_id = serve.external_id(application.name, reference)
            self._end(external_id, JobStatus(external_id, CenterJobState.FAILED, reason=reason))
        logger.info("RAY center %s: Serve application %s failed: %s", self.center, application.name, application.why)

    def _end(self, external_id: str, status: JobStatus) -> None:
        # started only if it ran: a replica that never did is not metered as if it had
        started = self._running_since.pop(external_id, None)
        self._ended[external_id] = JobStatus(
            external_id, status.state, reason=status.reason, started_at=started, finished_at=datetime.now(UTC)
        )
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    async def _applications(self) -> dict[str, serve.Application]:
        body = await self._request("GET", serve.APPLICATIONS)
        try:
            applications = serve.parse_applications(body if isinstance(body, dict) else {})
        except ValueError as error:
            raise CenterUnreachable(f"the Ray dashboard answered a Serve status that is not one: {error}", center=self.center) from None
        port = (body.get("http_options") or {}).get("port") if isinstance(body, dict) else None
        if isinstance(port, int) and body.get("controller_info"):
            self._port = port
        return applications

    async def _deploy(
        self, applications: Mapping[str, serve.Application], app: str, config: Mapping[str, Any] | None
    ) -> dict[str, serve.Application]:
        """Write the whole Serve config with ``app`` as ``config`` (None: deleted); the others as deployed."""
        others = {name: application for name, application in applications.items() if name != app and not application.deleting}
        if any(not application.config for application in others.values()):
            raise SubmissionRejected(
                "the Ray cluster runs Serve applications deployed from Python: the gateway deploys declaratively only", center=self.center
            )
        configs = [dict(application.config) for application in others.values()] + ([dict(config)] if config is not None else [])
        try:
            await self._request("PUT", serve.APPLICATIONS, json_body=serve.deploy_body(configs, self.options), expect_json=False)
        except HttpFailure as failure:
            if 400 <= failure.status_code < 500:
                raise SubmissionRejected(f"Ray Serve refused the application: {failure.message}", center=self.center) from None
            raise
        return dict(others)

    async def _upload(self) -> str:
        """The runner's package in the cluster (uploaded unless it is there: a restarted head has lost it)."""
        name, data = serve.package()
        try:
            await self._request("GET", serve.package_path(name), expect_json=False)
        except HttpFailure as failure:
            if failure.status_code != 404:
                raise
            await self._request("PUT", serve.package_path(name), content=data, expect_json=False)
        return name
