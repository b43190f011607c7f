"""OpenTelemetry spans, when the optional ``aicn[otel]`` extra is installed; nothing otherwise.

Spans go to whatever tracer provider the process has: none (the API's no-op) unless the
operator configures an OTLP endpoint (aicn.telemetry), or a test installs its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping

AVAILABLE = importlib.util.find_spec("opentelemetry") is not None and importlib.util.find_spec("opentelemetry.trace") is not None
TRACER = "aicn"


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | float | bool] | None = None) -> Iterator[None]:
    """A span around the block (the exception that leaves it is recorded on it)."""
    if not AVAILABLE:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer(TRACER).start_as_current_span(name, attributes=dict(attributes or {})):
        yield
