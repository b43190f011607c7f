"""Inference services at the peer, through its public contract: send a model (its streamed
``POST /models/upload``), deploy, read, scale, stop (its graph) and invoke (its
``POST /services/{id}/invoke``), with the peer token.

Nothing of the peer (its address, its token, its error texts unscrubbed) leaves this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from connectors.errors import CenterRefusedCredentials, CenterTimeout, CenterUnreachable, JobNotFound, SubmissionRejected
from connectors.hops import VIA_HEADER, format_via
from connectors.peer.client import REFUSED, PeerGraph, split_url

DEPLOY = """
mutation PeerDeploy($input: DeployModelInput!) {
  deployModel(input: $input) { service { id state } userErrors { code message } }
}
"""

SERVICE_FIELDS = """
id state failureReason replicas { min max ready desired } pricePerUnitHour { amount }
replicaJobs { id state startedAt request { devices accelerator } computeUnit { accelerator { model } pricePerUnitHour { amount } } }
"""

SERVICE = f"query PeerService($id: ID!) {{ node(id: $id) {{ ... on InferenceService {{ {SERVICE_FIELDS} }} }} }}"

USAGE = """
query PeerServiceUsage($id: ID!, $after: String) {
  node(id: $id) { ... on InferenceService {
    usage(first: 50, after: $after) {
      edges { cursor node { accelerator devices unitPrice { amount } job { id } } }
      pageInfo { hasNextPage endCursor }
    }
  } }
}
"""

SCALE = """
mutation PeerScale($input: ScaleServiceInput!) { scaleService(input: $input) { service { id } userErrors { code message } } }
"""

STOP = "mutation PeerStop($input: StopServiceInput!) { stopService(input: $input) { service { id state } userErrors { code message } } }"


@dataclass(frozen=True)
class RemoteReplica:
    external_id: str
    state: str
    accelerator: str
    devices: int
    #: the peer's price per standard-unit-hour for it (before this center's markup)
    price: Decimal | None = None


@dataclass(frozen=True)
class RemoteService:
    remote_id: str
    state: str
    failure_reason: str | None
    ready: int
    desired: int
    replicas: tuple[RemoteReplica, ...]
    #: the peer's price per standard-unit-hour for one replica's devices (before this center's markup)
    price: Decimal | None = None


@dataclass(frozen=True)
class UsagePage:
    """One page of the peer's usage records of a service (newest first): (cursor, the replica it metered)."""

    records: tuple[tuple[str, RemoteReplica], ...]
    next_cursor: str | None


@dataclass(frozen=True)
class RemoteAnswer:
    """What the peer's invoke route answered: its status, its body (JSON), and its error code if any."""

    status: int
    body: bytes
    code: str | None = None
    message: str | None = None


class PeerServices:
    def __init__(self, graph: PeerGraph, *, timeout: float) -> None:
        self.graph = graph
        base, _ = split_url(graph.url)
        self._http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(timeout), limits=httpx.Limits(max_connections=64))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _refusal(self, problems: list[dict[str, Any]], what: str) -> SubmissionRejected:
        reason = "; ".join(f"{p.get('code')}: {p.get('message')}" for p in problems) or f"the peer made no {what}"
        return SubmissionRejected(self.graph.scrub(reason), center=self.graph.center)

    async def upload_model(
        self,
        query: Mapping[str, str],
        *,
        checksum: str,
        length: int,
        body: AsyncIterator[bytes],
        folder: bool,
        via: tuple[str, ...],
    ) -> str:
        """The model's id at the peer, made from ``body`` (``length`` bytes: a file, or a folder as a tar
        stream) by its ``POST /models/upload``; the same name, version and checksum again find it."""
        headers = {
            "authorization": f"Bearer {self.graph.token}",
            "x-checksum": checksum,
            "content-length": str(length),
            "content-type": "application/x-tar" if folder else "application/octet-stream",
        }
        if via:
            headers[VIA_HEADER] = format_via(via)
        try:
            response = await self._http.post("/models/upload", params=dict(query), content=body, headers=headers)
        except httpx.TimeoutException as failure:
            raise CenterTimeout(
                f"the peer gateway did not take the model in time ({type(failure).__name__})", center=self.graph.center
            ) from None
        except httpx.HTTPError as failure:
            raise CenterUnreachable(f"the peer gateway could not be reached ({type(failure).__name__})", center=self.graph.center) from None
        if response.status_code == 401:
            raise CenterRefusedCredentials(REFUSED, center=self.graph.center)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code in (200, 201) and isinstance((answer.get("data") or {}).get("id"), str):
            return str(answer["data"]["id"])
        problem = (answer.get("errors") or [{}])[0] if isinstance(answer, dict) else {}
        code = (problem.get("extensions") or {}).get("code") or f"HTTP_{response.status_code}"
        message = f"{code}: {problem.get('message') or 'the peer kept no model'}"
        if response.status_code >= 500 and code != "STORAGE_QUOTA_EXCEEDED":
            raise CenterUnreachable(self.graph.scrub(message), center=self.graph.center)
        raise SubmissionRejected(self.graph.scrub(message), center=self.graph.center)

    async def deploy(self, fields: Mapping[str, Any], *, via: tuple[str, ...]) -> str:
        """The service's id at the peer; ``fields`` carry an idempotency key, so a retry finds it."""
        data = await self.graph.run(DEPLOY, {"input": dict(fields)}, via=via)
        answer = data.get("deployModel") or {}
        service = answer.get("service")
        if answer.get("userErrors") or not service:
            raise self._refusal(answer.get("userErrors") or [], "service")
        return str(service["id"])

    async def read(self, remote_id: str) -> RemoteService:
        node = (await self.graph.run(SERVICE, {"id": remote_id})).get("node")
        if not node:
            raise JobNotFound(f"the peer does not know service {remote_id}", center=self.graph.center)
        replicas = tuple(
            RemoteReplica(
                external_id=str(job["id"]),
                state=str(job["state"]),
                accelerator=str(
                    ((job.get("computeUnit") or {}).get("accelerator") or {}).get("model") or job["request"].get("accelerator") or ""
                ),
                devices=int(job["request"].get("devices") or 1),
                price=_amount(((job.get("computeUnit") or {}).get("pricePerUnitHour") or {}).get("amount")),
            )
            for job in node.get("replicaJobs") or []
        )
        counts = node.get("replicas") or {}
        reason = node.get("failureReason")
        return RemoteService(
            remote_id=remote_id,
            state=str(node["state"]),
            failure_reason=self.graph.scrub(reason) if reason else None,
            ready=int(counts.get("ready") or 0),
            desired=int(counts.get("desired") or 0),
            replicas=replicas,
            price=_amount((node.get("pricePerUnitHour") or {}).get("amount")),
        )

    async def usage(self, remote_id: str, after: str | None) -> UsagePage:
        """The peer's usage records of the service after the cursor ``after`` (older ones): each replica that ran, once."""
        node = (await self.graph.run(USAGE, {"id": remote_id, "after": after})).get("node")
        if not node:
            raise JobNotFound(f"the peer does not know service {remote_id}", center=self.graph.center)
        usage = node.get("usage") or {}
        records = tuple(
            (
                str(edge["cursor"]),
                RemoteReplica(
                    external_id=str(edge["node"]["job"]["id"]),
                    state="ENDED",
                    accelerator=str(edge["node"].get("accelerator") or ""),
                    devices=int(edge["node"].get("devices") or 1),
                    price=_amount((edge["node"].get("unitPrice") or {}).get("amount")),
                ),
            )
            for edge in usage.get("edges") or []
            if (edge.get("node") or {}).get("job")
        )
        info = usage.get("pageInfo") or {}
        return UsagePage(records, str(info["endCursor"]) if info.get("hasNextPage") and info.get("endCursor") else None)

    async def scale(self, remote_id: str, scale: Mapping[str, Any]) -> None:
        data = await self.graph.run(SCALE, {"input": {"serviceId": remote_id, "scale": dict(scale)}})
        problems = (data.get("scaleService") or {}).get("userErrors") or []
        if problems:
            raise self._refusal(problems, "change of scale")

    async def stop(self, remote_id: str) -> None:
        data = await self.graph.run(STOP, {"input": {"serviceId": remote_id}})
        problems = [p for p in (data.get("stopService") or {}).get("userErrors") or [] if p.get("code") != "SERVICE_NOT_FOUND"]
        if problems:
            raise self._refusal(problems, "stop")

    async def invoke(self, remote_id: str, body: bytes, deadline: float, *, via: tuple[str, ...]) -> RemoteAnswer:
        """The peer's answer to ``POST /services/{remote_id}/invoke``; raises httpx errors for a failed transport."""
        headers = {"authorization": f"Bearer {self.graph.token}", "content-type": "application/json"}
        if via:
            headers[VIA_HEADER] = format_via(via)
        response = await self._http.post(f"/services/{remote_id}/invoke", content=body, headers=headers, timeout=httpx.Timeout(deadline))
        if response.status_code < 300:
            return RemoteAnswer(response.status_code, response.content)
        code, message = None, None
        try:
            error = (response.json().get("errors") or [{}])[0]
            code = (error.get("extensions") or {}).get("code")
            message = self.graph.scrub(str(error.get("message") or ""))[:300]
        except (ValueError, AttributeError, IndexError):
            pass
        return RemoteAnswer(response.status_code, b"", code, message)


def _amount(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None
