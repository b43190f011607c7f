"""One HTTP client for the connectors that reach their center over HTTP.

SLURM (slurmrestd) uses it; RAY (the Ray Jobs REST API) and PEER (another aicn gateway
over GraphQL) are meant to. It holds what each of them would otherwise write again:

* **deadlines**: ``timeout`` seconds for each phase of a request (connect, send, answer);
  waiting for one of the ``max_concurrent`` connections is not counted against it;
* **the error hierarchy**: no answer in time is ``CenterTimeout``; a connection refused,
  reset or otherwise broken is ``CenterUnreachable``; an error status is the error a
  ``StatusRule`` declares for it, or else an ``HttpFailure``, a ``CenterUnreachable``
  that keeps the status and the body for the connector to read another meaning into
  (a job that is not found, a submission refused); a success that is not JSON is
  ``CenterUnreachable``;
* **secrets**: every message it builds goes through the connector's ``scrub``, so a token
  that a server or a transport error echoes never reaches an error, a log or a repr.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from connectors.errors import CenterTimeout, CenterUnreachable, ConnectorError

#: how much of an error body an HttpFailure keeps, and how much of that its message shows
TEXT_KEPT = 500
TEXT_SHOWN = 200


def redact(text: str, secrets: Iterable[str], mask: str = "<hidden>") -> str:
    """``text`` with every non-empty secret replaced by ``mask``."""
    # the longest first: a secret that holds a shorter one must not be left half cut
    for secret in sorted((secret for secret in secrets if secret), key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


@dataclass(frozen=True)
class StatusRule:
    """What an HTTP status always means for one center: the error to raise, and its message."""

    error: type[ConnectorError]
    message: str


class HttpFailure(CenterUnreachable):
    """The center answered with an error status that no rule maps.

    ``body`` is the answer's JSON as the center sent it (None when it is not JSON): read
    it, never show it unscrubbed. ``text`` is the start of the answer, already scrubbed.
    """

    def __init__(self, message: str, *, center: str, status_code: int, body: Any, text: str) -> None:
        super().__init__(message, center=center)
        self.status_code = status_code
        self.body = body
        self.text = text


class HttpClient:
    """Requests to one center's HTTP API, every failure mapped onto the connector errors.

    ``service`` names the far side in messages (``"slurmrestd"``); ``prefix`` is put
    before every path but left out of messages; ``statuses`` maps the statuses that always
    mean the same for this center. ``scrub`` cuts the connector's secrets out of a text.
    """

    def __init__(
        self,
        center: str,
        service: str,
        base_url: str,
        *,
        prefix: str = "",
        timeout: float = 10.0,
        max_concurrent: int = 4,
        statuses: Mapping[int, StatusRule] | None = None,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.center = center
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._statuses = dict(statuses or {})
        self._scrub = scrub or _as_is
        self._client = httpx.AsyncClient(
            base_url=self.base_url + prefix,
            timeout=httpx.Timeout(timeout, pool=None),
            limits=httpx.Limits(max_connections=max_concurrent),
        )

    def __repr__(self) -> str:
        return f"HttpClient(center={self.center!r}, service={self.service!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def scrub(self, text: str) -> str:
        """``text`` without the connector's secrets: for every message that may quote the center."""
        return self._scrub(text)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        expect_json: bool = True,
    ) -> Any:
        """The JSON a successful answer carries (None for an answer without a body when not
        ``expect_json``); raises a ConnectorError for anything else. ``content``: raw bytes to send."""
        try:
            response = await self._client.request(method, path, json=json_body, headers=headers, content=content)
        except httpx.TimeoutException:
            raise self._error(
                CenterTimeout, f"{self.service} at {self.base_url} did not answer {method} {path} within {self.timeout:g}s"
            ) from None
        except httpx.RequestError as error:
            raise self._error(
                CenterUnreachable, f"cannot reach {self.service} at {self.base_url}: {type(error).__name__}: {error}"
            ) from None
        status = response.status_code
        rule = self._statuses.get(status)
        if rule is not None:
            raise self._error(rule.error, rule.message)
        if status >= 300:
            # scrubbed before it is cut, so that no piece of a secret is left at the cut
            text = self.scrub(response.content.decode("utf-8", "replace"))[:TEXT_KEPT]
            detail = text[:TEXT_SHOWN].strip() or "no detail"
            raise HttpFailure(
                self.scrub(f"{self.service} answered {method} {path} with HTTP {status}: {detail}"),
                center=self.center,
                status_code=status,
                body=_json_of(response.content),
                text=text,
            )
        if not expect_json and not response.content.strip():
            return None
        body = _json_of(response.content, _NOT_JSON)
        if body is _NOT_JSON:
            raise self._not_json(method, path)
        return body

    async def request_object(
        self, method: str, path: str, *, json_body: Any = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Like ``request``, for an API whose every answer is a JSON object."""
        body = await self.request(method, path, json_body=json_body, headers=headers)
        if not isinstance(body, dict):
            raise self._not_json(method, path)
        return body

    def _not_json(self, method: str, path: str) -> ConnectorError:
        return self._error(CenterUnreachable, f"{self.service} answered {method} {path} with something that is not JSON")

    def _error(self, kind: type[ConnectorError], message: str) -> ConnectorError:
        return kind(self.scrub(message), center=self.center)


_NOT_JSON: Any = object()


def _as_is(text: str) -> str:
    return text


def _json_of(content: bytes, otherwise: Any = None) -> Any:
    # leniently decoded: one bad byte (in a job's comment, say) must not hide a whole answer
    try:
        return json.loads(content.decode("utf-8", "replace"))
    except ValueError:
        return otherwise
