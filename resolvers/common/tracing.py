"""OpenTelemetry spans, when the optional ``aicn[otel]`` extra is installed; nothing otherwise.

Spans go to the tracer provider of the process, which the operator's OTLP endpoint sets
(aicn.telemetry), or a test; with none set, no span is made at all.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping

AVAILABLE = importlib.util.find_spec("opentelemetry") is not None and importlib.util.find_spec("opentelemetry.trace") is not None
TRACER = "aicn"


def active() -> bool:
    """Whether spans go anywhere: the extra is installed and a tracer provider is set (until then
    the API's proxy would make spans nobody records, at a cost on every operation and field)."""
    if not AVAILABLE:
        return False
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | float | bool] | None = None) -> Iterator[None]:
    """A span around the block (the exception that leaves it is recorded on it)."""
    if not active():
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer(TRACER).start_as_current_span(name, attributes=dict(attributes or {})):
        yield
