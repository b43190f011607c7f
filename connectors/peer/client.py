"""GraphQL over HTTP to a peer gateway, every failure a connector error.

A transport failure is what ``HttpClient`` makes of it (CENTER_UNAVAILABLE, CENTER_TIMEOUT);
a refused token (HTTP 401, or ``UNAUTHENTICATED``/``FORBIDDEN`` in the answer) is
``CenterRefusedCredentials``; a call the peer refuses as a loop is ``PeerLoop``. The token
never leaves this module but in the ``authorization`` header, and is cut from every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors.errors import CenterRefusedCredentials, CenterUnreachable, SubmissionRejected
from connectors.hops import VIA_HEADER, format_via
from connectors.http import HttpClient, HttpFailure, StatusRule, redact

REFUSED = "the peer refuses the configured token (revoked, expired or unknown): issue a new one at the peer"


class PeerLoop(SubmissionRejected):
    """The peer is already on the path of this call or job: going there again would loop."""

    code = "PEER_LOOP"


def split_url(url: str) -> tuple[str, str]:
    """(``scheme://host:port``, ``/path``) of the peer's GraphQL endpoint."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), parts.path or "/graphql"


class PeerGraph:
    def __init__(self, center: str, url: str, token: str, *, timeout: float) -> None:
        self.center = center
        self.url = url
        self._token = token
        base, self.path = split_url(url)
        self._http = HttpClient(
            center,
            "the peer gateway",
            base,
            timeout=timeout,
            max_concurrent=8,
            statuses={401: StatusRule(CenterRefusedCredentials, REFUSED)},
            scrub=self.scrub,
        )

    def __repr__(self) -> str:
        return f"PeerGraph(center={self.center!r}, url={self.url!r})"

    def scrub(self, text: str) -> str:
        return redact(text, [self._token])

    @property
    def token(self) -> str:
        return self._token

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, query: str, variables: Mapping[str, Any] | None = None, *, via: tuple[str, ...] = ()) -> dict[str, Any]:
        """The answer's ``data``; raises for a transport failure, a refusal, or an answer without data."""
        headers = {"authorization": f"Bearer {self._token}", "accept": "application/graphql-response+json"}
        if via:
            headers[VIA_HEADER] = format_via(via)
        body = {"query": query, "variables": dict(variables or {})}
        answer: dict[str, Any]
        try:
            answer = await self._http.request_object("POST", self.path, json_body=body, headers=headers)
        except HttpFailure as failure:
            if not isinstance(failure.body, dict) or "errors" not in failure.body:
                raise
            answer = failure.body
            if answer.get("data") is None:
                raise self._refusal(answer["errors"], failure) from None
        data = answer.get("data")
        errors = answer.get("errors") or []
        if not isinstance(data, dict):
            raise self._refusal(errors, None)
        self._check_credentials(errors)
        return data

    def _check_credentials(self, errors: list[Any]) -> None:
        codes = {_code(error) for error in errors}
        if codes & {"UNAUTHENTICATED", "FORBIDDEN"}:
            raise CenterRefusedCredentials(REFUSED, center=self.center)

    def _refusal(self, errors: list[Any], failure: HttpFailure | None) -> CenterUnreachable | SubmissionRejected:
        self._check_credentials(errors)
        codes = [_code(error) for error in errors]
        message = self.scrub("; ".join(str(error.get("message", "")) for error in errors if isinstance(error, dict))[:300])
        if "PEER_LOOP" in codes:
            return PeerLoop(f"PEER_LOOP: {message}", center=self.center)
        if failure is not None:
            return failure
        return CenterUnreachable(f"the peer answered without data: {message or 'no detail'}", center=self.center)


def _code(error: Any) -> str | None:
    if not isinstance(error, dict):
        return None
    extensions = error.get("extensions")
    return extensions.get("code") if isinstance(extensions, dict) else None
