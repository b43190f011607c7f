"""Send one request to a READY replica: spread by fewest in flight, bounded by the service's
deadline, mapped to coded errors (a replica's own error text never reaches the client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from resolvers.services.pool import ServicePool
from store.service_tables import ServiceRow

#: connections kept open to replicas (each replica answers over HTTP/1.1 keep-alive)
MAX_CONNECTIONS = 256


@dataclass
class Invocation:
    """A replica's answer (``raw`` JSON, parsed on demand as ``output``), or why there is none (``code`` and ``message``)."""

    raw: bytes | None = None
    code: str | None = None
    message: str | None = None
    status: int | None = None
    latency_ms: float | None = None

    @classmethod
    def refused(cls, message: str, code: str, status: int | None = None) -> Invocation:
        return cls(code=code, message=message, status=status)

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def output(self) -> Any:
        return json.loads(self.raw) if self.raw is not None else None


class ReplicaLost(Exception):
    """The replica's connection failed before it answered."""


class Proxy:
    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self.http = httpx.AsyncClient(limits=limits)

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, service: ServiceRow, pool: ServicePool, body: bytes, cold_start: float, wake: Callable[[], None]) -> Invocation:
        tried: set[int] = set()
        attempts = 2 if service.idempotent else 1
        for _ in range(attempts):
            replica = pool.pick(tried)
            if replica is None:
                wake()  # with none READY (scaled to zero, or replacing one) the controller starts one
                replica = await pool.wait_for_replica(cold_start, tried)
            if replica is None:
                return Invocation.refused(f"no replica of the service became ready within {cold_start:g} s", "SERVICE_NOT_READY")
            tried.add(replica.job_id)
            replica.in_flight += 1
            try:
                return await self._post(replica.url, body, service.deadline_seconds)
            except ReplicaLost:
                pool.drop(replica.job_id)  # the controller checks it and replaces it
                pool.lost = True
                wake()
            finally:
                replica.in_flight -= 1
        retried = " (retried once on another replica)" if service.idempotent else ""
        return Invocation.refused(f"the replica serving the request failed before it answered{retried}", "REPLICA_FAILED")

    async def _post(self, url: str, body: bytes, deadline: float) -> Invocation:
        try:
            response = await self.http.post(
                url + "/invoke", content=body, headers={"content-type": "application/json"}, timeout=httpx.Timeout(deadline)
            )
        except httpx.TimeoutException as error:
            if isinstance(error, httpx.ConnectTimeout):
                raise ReplicaLost from None
            return Invocation.refused(f"the model did not answer within the service's deadline ({deadline:g} s)", "SERVICE_TIMEOUT")
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            raise ReplicaLost from None
        if response.status_code >= 500:
            return Invocation.refused(f"the model server answered HTTP {response.status_code}", "BACKEND_ERROR", response.status_code)
        if response.status_code >= 400:
            return Invocation.refused(f"the model refused the input (HTTP {response.status_code})", "INVALID_INPUT", response.status_code)
        if not response.headers.get("content-type", "").startswith("application/json"):  # a JSON answer is passed on unparsed
            try:
                json.loads(response.content)
            except ValueError:
                return Invocation.refused(
                    f"the model server answered HTTP {response.status_code} without JSON", "BACKEND_ERROR", response.status_code
                )
        return Invocation(raw=response.content, status=response.status_code)
