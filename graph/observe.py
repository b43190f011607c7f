"""What every operation reports: Prometheus counts and latency, and an OpenTelemetry span.

The span is strawberry's ``OpenTelemetryExtension`` (the ``aicn[otel]`` extra), without the
resolvers' arguments (an input may hold what should not leave the gateway). Without the extra,
or before a tracer provider is set, the factory returns a no-op extension: the schema is the
same either way, and an untraced gateway pays nothing per field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from resolvers.common import metrics
from resolvers.common.tracing import active, provider


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        name = metrics.operation_label(context.operation_name)
        try:
            kind = context.operation_type.value
        except Exception:  # not parsed (a syntax error, a refused text)
            kind = "unknown"
        failed = bool(context.pre_execution_errors) or bool(context.result is not None and context.result.errors)
        metrics.operations.labels(name, kind, "error" if failed else "ok").inc()
        metrics.operation_seconds.labels(name, kind).observe(time.perf_counter() - started)


class _NoTracing(SchemaExtension):
    pass


def _no_arguments(_arguments: dict[str, Any], _info: Any) -> dict[str, Any]:
    return {}


def operation_tracing() -> SchemaExtension:
    """A span per operation (and per custom resolver inside it), to the process's tracer provider."""
    if not active():
        return _NoTracing()
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension(arg_filter=_no_arguments, tracer_provider=provider())
