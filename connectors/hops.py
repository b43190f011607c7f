"""The path of gateways a request or a job has come through, so that a network of peers has no loops.

Each gateway has a stable id. A gateway that calls a peer sends, in the ``aicn-via`` header,
the ids of the gateways the call has already passed through and its own id last; a gateway
that finds its own id there refuses the call (``PEER_LOOP``). The graph's HTTP face sets
``VIA`` for the request it serves, so that a peer connector called while serving it
forwards the path.
"""

from __future__ import annotations

from contextvars import ContextVar

VIA_HEADER = "aicn-via"
#: at most this many gateways on one path (a header is no place for an unbounded list)
MAX_HOPS = 16
VIA: ContextVar[tuple[str, ...]] = ContextVar("aicn_via", default=())


def parse_via(header: str | None) -> tuple[str, ...]:
    if not header:
        return ()
    return tuple(part.strip() for part in header.split(",") if part.strip())[:MAX_HOPS]


def format_via(path: tuple[str, ...]) -> str:
    return ",".join(path)
