"""OpenTelemetry spans, when the optional ``aicn[otel]`` extra is installed; nothing otherwise.

Spans go to the tracer provider of the process, which the operator's OTLP endpoint sets
(aicn.telemetry), or to one a test installs for a while (``use_provider``); with neither,
no span is made at all.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

AVAILABLE = importlib.util.find_spec("opentelemetry") is not None and importlib.util.find_spec("opentelemetry.trace") is not None
TRACER = "aicn"
_override: Any = None
#: whether the process's tracer provider is a real one, once looked up (None: not yet). The look-up reads
#: the environment (``OTEL_PYTHON_TRACER_PROVIDER``), and every call to a center asks: once is enough, as
#: OpenTelemetry sets the process's provider once; ``process_provider_set`` makes it look again
_process_provider: bool | None = None


def use_provider(provider: Any) -> None:
    """Send spans to ``provider`` instead of the process's (None: back to the process's)."""
    global _override
    _override = provider


def provider() -> Any:
    """The tracer provider spans go to (``opentelemetry.trace.TracerProvider``)."""
    if _override is not None:
        return _override
    from opentelemetry import trace

    return trace.get_tracer_provider()


def process_provider_set() -> None:
    """The process's tracer provider has just been set (aicn.telemetry): ``active`` looks it up again."""
    global _process_provider
    _process_provider = None


def active() -> bool:
    """Whether spans go anywhere: the extra is installed and a tracer provider is set (until then
    the API's proxy would make spans nobody records, at a cost on every operation and field)."""
    global _process_provider
    if _override is not None:
        return True
    if _process_provider is None:
        _process_provider = AVAILABLE and _real_process_provider()
    return _process_provider


def _real_process_provider() -> bool:
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | float | bool] | None = None) -> Iterator[None]:
    """A span around the block (the exception that leaves it is recorded on it)."""
    if not active():
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer(TRACER, tracer_provider=provider()).start_as_current_span(name, attributes=dict(attributes or {})):
        yield
