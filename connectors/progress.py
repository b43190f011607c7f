"""The one documented way a job reports progress.

A job prints (LOCAL) or sets as its comment (SLURM) a line of the form

    AICN_PROGRESS {"fraction": 0.5, "step": 5, "totalSteps": 10, "message": "epoch 5", "metrics": {"loss": 0.3}}

Every key is optional. A line that starts with the marker but does not hold a JSON
object, or holds values of the wrong type, is ignored: a job's own output can never
break the gateway. Metrics that are not finite numbers (``NaN``, ``Infinity``, as Python's
``json.dumps`` writes them) are kept as null.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import ProgressReport

MARKER = "AICN_PROGRESS"


def parse_progress_line(line: str, ordinal: int, at: datetime) -> ProgressReport | None:
    """The report a line carries, or None when it is not a (valid) progress line."""
    text = line.strip()
    if not text.startswith(MARKER):
        return None
    try:
        payload = json.loads(text[len(MARKER) :].strip() or "{}")
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    fraction = _number(payload.get("fraction"))
    if fraction is not None:
        fraction = min(1.0, max(0.0, fraction))
    metrics = payload.get("metrics")
    message = payload.get("message")
    return ProgressReport(
        ordinal=ordinal,
        at=at,
        fraction=fraction,
        step=_integer(payload.get("step")),
        total_steps=_integer(payload.get("totalSteps", payload.get("total_steps"))),
        message=message[:2000] if isinstance(message, str) else None,
        metrics=_finite(metrics) if isinstance(metrics, dict) else None,
    )


@dataclass
class ProgressBacklog:
    """A job's progress reports, numbered from 1 in the order they came, that its caller may still
    ask for. The caller asks for those after the last ordinal it has recorded (``after``), and those
    up to it are forgotten then: a job that prints progress for days holds only what it printed
    since it was last asked about, and an ask costs what it returns, not the job's whole history."""

    _reports: list[ProgressReport] = field(default_factory=list)
    #: the ordinals up to this one are forgotten (the first report held is ``_forgotten + 1``)
    _forgotten: int = 0

    @property
    def count(self) -> int:
        """How many reports the job has made (forgotten ones included)."""
        return self._forgotten + len(self._reports)

    @property
    def held(self) -> int:
        """How many reports are still held."""
        return len(self._reports)

    def next_ordinal(self) -> int:
        return self.count + 1

    def add(self, report: ProgressReport) -> None:
        self._reports.append(report)

    def after(self, ordinal: int) -> tuple[ProgressReport, ...]:
        """The reports after ``ordinal``; those up to it are forgotten (an ``ordinal`` below what an
        earlier ask forgot gets every report held: the caller recorded the others)."""
        done = min(max(0, ordinal - self._forgotten), len(self._reports))
        if done:
            del self._reports[:done]
            self._forgotten += done
        return tuple(self._reports)


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity made null: JSON has no such numbers (PostgreSQL's
    json type refuses them, and so do GraphQL clients), yet a diverging loss prints them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**31) <= value < 2**31 else None
