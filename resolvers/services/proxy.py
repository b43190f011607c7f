"""Send one request to a READY replica: spread by fewest in flight, bounded by the service's
deadline, mapped to coded errors (a replica's own error text never reaches the client)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from resolvers.services.pool import Replica, ServicePool
from resolvers.services.upstream import Upstream, UpstreamLost, UpstreamTimeout
from resolvers.services.usage import EventScanner, TokenUsage, usage_of_body
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


@dataclass(frozen=True)
class Passthrough:
    """One request of an OPENAI service, to pass on as is: ``path`` is what follows ``/v1/``."""

    method: str
    path: str
    query: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None


@dataclass
class Relay:
    """An OPENAI replica's answer, passed on as is: its status, content type, and its body whole
    or (``stream``, for server-sent events) chunk by chunk as the replica sends them."""

    status: int
    content_type: str
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    #: ends a stream whether or not it was read (a client gone before the first chunk): the replica
    #: is released and the request counted, once
    close: Callable[[], Awaitable[None]] | None = None


#: told the usage a request's answer reported (None: it reported none), once, when the answer is over;
#: the answer (or its stream's end) goes out once it returns (the count is written)
Done = Callable[[TokenUsage | None], Awaitable[None]]


def event_error(message: str, code: str) -> bytes:
    """An error told inside an event stream that already began (its status was sent)."""
    error = {"error": {"message": message, "type": "server_error", "code": code}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


async def _replica(pool: ServicePool, tried: set[int], cold_start: float, wake: Callable[[], None]) -> Replica | None:
    """A READY replica not tried yet; with none (scaled to zero, or replacing one) the controller is
    woken to start one, and it is waited for up to ``cold_start`` seconds."""
    replica = pool.pick(tried)
    if replica is None:
        wake()
        replica = await pool.wait_for_replica(cold_start, tried)
    return replica


def not_ready(cold_start: float) -> Invocation:
    return Invocation.refused(f"no replica of the service became ready within {cold_start:g} s", "SERVICE_NOT_READY")


def replica_failed(service: ServiceRow) -> Invocation:
    retried = " (retried once on another replica)" if service.idempotent else ""
    return Invocation.refused(f"the replica serving the request failed before it answered{retried}", "REPLICA_FAILED")


class ReplicaLost(Exception):
    """The replica's connection failed before it answered."""


class Proxy:
    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self.http = httpx.AsyncClient(limits=limits)
        #: ``/invoke`` requests (the OpenAI passthrough, which may stream, goes through httpx)
        self.upstream = Upstream()

    async def close(self) -> None:
        await self.http.aclose()
        await self.upstream.close()

    async def send(self, service: ServiceRow, pool: ServicePool, body: bytes, cold_start: float, wake: Callable[[], None]) -> Invocation:
        tried: set[int] = set()
        attempts = 2 if service.idempotent else 1
        for _ in range(attempts):
            replica = await _replica(pool, tried, cold_start, wake)
            if replica is None:
                return not_ready(cold_start)
            tried.add(replica.job_id)
            replica.in_flight += 1
            try:
                return await self._post(replica.url, body, service.deadline_seconds)
            except ReplicaLost:
                pool.drop(replica.job_id)  # the controller checks it and replaces it
                self.upstream.forget(replica.url)
                pool.lost = True
                wake()
            finally:
                replica.in_flight -= 1
        return replica_failed(service)

    async def relay(
        self, service: ServiceRow, pool: ServicePool, request: Passthrough, cold_start: float, wake: Callable[[], None], done: Done
    ) -> Invocation | Relay:
        """Pass ``request`` to a READY replica's ``/v1/...``; ``done`` is told the usage once the answer is over."""
        tried: set[int] = set()
        attempts = 2 if service.idempotent else 1
        for _ in range(attempts):
            replica = await _replica(pool, tried, cold_start, wake)
            if replica is None:
                await done(None)
                return not_ready(cold_start)
            tried.add(replica.job_id)
            replica.in_flight += 1
            try:
                answer = await self._open(replica, request, service.deadline_seconds, done)
            except ReplicaLost:
                replica.in_flight -= 1
                pool.drop(replica.job_id)
                pool.lost = True
                wake()
                continue
            except BaseException:
                replica.in_flight -= 1
                await done(None)
                raise
            if not isinstance(answer, Relay) or answer.stream is None:
                replica.in_flight -= 1
            return answer
        await done(None)
        return replica_failed(service)

    async def _open(self, replica: Replica, request: Passthrough, deadline: float, done: Done) -> Invocation | Relay:
        headers = {name: value for name, value in (("content-type", request.content_type), ("accept", request.accept)) if value}
        url = f"{replica.url}/v1/{request.path}" + (f"?{request.query}" if request.query else "")
        outgoing = self.http.build_request(
            request.method, url, content=request.body or None, headers=headers, timeout=httpx.Timeout(deadline)
        )
        try:
            response = await self.http.send(outgoing, stream=True)
        except httpx.TimeoutException as error:
            if isinstance(error, httpx.ConnectTimeout):
                raise ReplicaLost from None
            await done(None)
            return Invocation.refused(f"the model did not answer within the service's deadline ({deadline:g} s)", "SERVICE_TIMEOUT")
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            raise ReplicaLost from None
        content_type = response.headers.get("content-type", "application/json")
        if response.status_code >= 500:
            await response.aclose()
            await done(None)
            return Invocation.refused(f"the model server answered HTTP {response.status_code}", "BACKEND_ERROR", response.status_code)
        if content_type.startswith("text/event-stream"):
            return self._stream(replica, response, deadline, done)
        try:
            body = await response.aread()
        except httpx.TimeoutException:
            await done(None)
            return Invocation.refused(f"the model did not answer within the service's deadline ({deadline:g} s)", "SERVICE_TIMEOUT")
        except httpx.TransportError:
            raise ReplicaLost from None
        finally:
            await response.aclose()
        await done(usage_of_body(body) if response.status_code < 400 else None)
        return Relay(response.status_code, content_type, body=body)

    def _stream(self, replica: Replica, response: httpx.Response, deadline: float, done: Done) -> Relay:
        """The replica's event stream, relayed chunk by chunk; its usage is read on the way."""
        scanner = EventScanner()
        ended = False

        async def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            replica.in_flight -= 1
            await response.aclose()
            scanner.close()
            await done(scanner.usage)

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                async for chunk in response.aiter_raw():
                    scanner.feed(chunk)
                    yield chunk
            except httpx.TimeoutException:
                yield event_error(f"the model stopped sending within the service's deadline ({deadline:g} s)", "SERVICE_TIMEOUT")
            except httpx.TransportError:
                yield event_error("the replica serving the request failed before it finished", "REPLICA_FAILED")
            finally:
                await end()

        stream = events()

        async def close() -> None:
            await stream.aclose()
            await end()

        content_type = response.headers.get("content-type", "text/event-stream")
        return Relay(response.status_code, content_type, stream=stream, close=close)

    async def _post(self, url: str, body: bytes, deadline: float) -> Invocation:
        try:
            response = await self.upstream.post(url + "/invoke", body, deadline)
        except UpstreamTimeout:
            return Invocation.refused(f"the model did not answer within the service's deadline ({deadline:g} s)", "SERVICE_TIMEOUT")
        except UpstreamLost:
            raise ReplicaLost from None
        if response.status >= 500:
            return Invocation.refused(f"the model server answered HTTP {response.status}", "BACKEND_ERROR", response.status)
        if response.status >= 400:
            return Invocation.refused(f"the model refused the input (HTTP {response.status})", "INVALID_INPUT", response.status)
        content = bytes(response.body)
        if not response.content_type.startswith("application/json"):  # a JSON answer is passed on unparsed
            try:
                json.loads(content)
            except ValueError:
                return Invocation.refused(
                    f"the model server answered HTTP {response.status} without JSON", "BACKEND_ERROR", response.status
                )
        return Invocation(raw=content, status=response.status)
