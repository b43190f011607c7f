"""One delivery attempt: a signed POST to the address that passed the destination check."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from resolvers.webhooks.destinations import Destination
from resolvers.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

USER_AGENT = "aicn-webhooks/1"
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Letter:
    """What one attempt sends."""

    url: str
    delivery_id: str
    event_kind: str
    body: bytes
    secret: str


def signed_headers(letter: Letter, timestamp: int, host: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": host,
        DELIVERY_HEADER: letter.delivery_id,
        EVENT_HEADER: letter.event_kind,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(letter.secret, timestamp, letter.body),
    }


async def send(client: httpx.AsyncClient, letter: Letter, destination: Destination, timeout: float) -> AttemptResult:
    """POST the letter to the destination's first checked address; redirects are not followed
    (one could lead inside) and the answer's body is not read (only its status counts)."""
    original = httpx.URL(letter.url)
    pinned = original.copy_with(host=str(destination.addresses[0]))
    host = original.netloc.decode("ascii")
    extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
    headers = signed_headers(letter, int(time.time()), host)
    started = time.perf_counter()
    try:
        request = client.build_request("POST", pinned, content=letter.body, headers=headers, timeout=timeout, extensions=extensions)
        response = await client.send(request, stream=True, follow_redirects=False)
        await response.aclose()
    except httpx.HTTPError as error:
        text = f"{type(error).__name__}: {error}".strip()[:MAX_ERROR_LENGTH]
        return AttemptResult(None, text, _elapsed(started))
    result_error = None if 200 <= response.status_code < 300 else f"the receiver answered HTTP {response.status_code}"
    return AttemptResult(response.status_code, result_error, _elapsed(started))


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
