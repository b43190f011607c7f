"""The knobs of serving, set by the operator (``[services]`` in aicn.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ServingPolicy:
    #: how often the controller looks at every service
    tick_seconds: float = 0.25
    #: in-flight requests per replica must stay above target this long before a replica is added
    scale_up_after_seconds: float = 1.0
    #: no replica is removed until this long after the last scaling step and the last busy moment
    cool_down_seconds: float = 30.0
    #: how long a request waits for a replica when none is READY (scale from zero)
    cold_start_seconds: float = 60.0
    health_interval_seconds: float = 2.0
    #: failed health checks in a row that get a READY replica replaced
    health_failures: int = 3
    #: a RUNNING replica that never answers its health check within this is replaced
    startup_seconds: float = 120.0
    #: replicas that end before they are ever READY, in a row, that fail the service
    failures_to_fail: int = 3
    max_payload_bytes: int = 1_048_576
    #: what a million tokens an OPENAI service's servers report cost (quoted on the service at deploy; 0: free)
    price_per_million_tokens: Decimal = Decimal(0)
    #: a priced service's counted tokens go on a bill at most this often, and once more when it ends
    token_billing_seconds: float = 3600.0
    #: the interpreter the built-in ONNX runner's replicas run with (``[services] python``); None: the gateway's own
    runner_python: str | None = None
