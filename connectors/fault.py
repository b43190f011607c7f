"""A fault-injecting connector, for fault tests and benchmarks only.

It describes a center with a fixed set of devices and, on command, answers late,
raises, hangs, or refuses the connection. It counts its calls per operation. It
passes for a LOCAL center (``kind``) and is never built from configuration: a test or
a benchmark hands it to ``Runtime(settings, connectors=...)`` in place of a center's own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from connectors.base import (
    CenterDescription,
    CenterJobState,
    Connector,
    DeviceCapacity,
    JobSpec,
    JobStatus,
    LogChunk,
    StatusQuery,
    Submission,
)
from connectors.errors import CenterTimeout, CenterUnreachable, JobNotFound, SubmissionRejected


@dataclass
class Fault:
    """What the next calls do: ``mode`` is ok, error, hang, refuse, disconnect or timeout; ``latency`` delays every call."""

    mode: str = "ok"
    latency: float = 0.0
    refuse_submissions: bool = False


class FaultyConnector(Connector):
    kind = "LOCAL"

    def __init__(self, name: str, devices: dict[str, int] | None = None, *, latency: float = 0.0) -> None:
        super().__init__(name)
        self.devices = devices or {"cpu-core": 4}
        self.fault = Fault(latency=latency)
        self.calls: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.submitted: dict[str, JobSpec] = {}
        #: what ``status`` reports of the jobs of these names (else QUEUED): a value the database refuses, say
        self.answers: dict[str, JobStatus] = {}

    def set(self, mode: str = "ok", latency: float | None = None) -> None:
        self.fault.mode = mode
        if latency is not None:
            self.fault.latency = latency

    async def _enter(self, operation: str) -> None:
        self.calls[operation] += 1
        if self.fault.latency:
            self.in_flight[operation] += 1
            self.max_in_flight[operation] = max(self.max_in_flight[operation], self.in_flight[operation])
            try:
                await asyncio.sleep(self.fault.latency)
            finally:
                self.in_flight[operation] -= 1
        if self.fault.mode == "hang":
            await asyncio.Event().wait()
        if self.fault.mode == "error":
            raise RuntimeError(f"injected failure in {operation}")
        if self.fault.mode == "refuse":
            raise CenterUnreachable("connection refused (injected)", center=self.name)
        if self.fault.mode == "disconnect":
            raise ConnectionResetError("connection reset by peer (injected)")
        if self.fault.mode == "timeout":
            raise CenterTimeout("the center's own client timed out (injected)", center=self.name)

    async def describe(self) -> CenterDescription:
        await self._enter("describe")
        return CenterDescription(kind=self.kind, name=self.name, version="fault-1")

    async def capacity(self) -> list[DeviceCapacity]:
        await self._enter("capacity")
        return [DeviceCapacity(model, total, total) for model, total in self.devices.items()]

    async def submit(self, spec: JobSpec) -> Submission:
        await self._enter("submit")
        if self.fault.refuse_submissions:
            raise CenterUnreachable("connection reset while submitting (injected)", center=self.name)
        if spec.accelerator not in self.devices:
            raise SubmissionRejected(f"no {spec.accelerator}", center=self.name)
        self.submitted[spec.reference] = spec
        return Submission(spec.reference, CenterJobState.QUEUED)

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        await self._enter("status")
        found = [q.external_id for q in queries if q.external_id in self.submitted]
        return {key: self._answer(key) for key in found}

    def _answer(self, external_id: str) -> JobStatus:
        answer = self.answers.get(self.submitted[external_id].name)
        return replace(answer, external_id=external_id) if answer is not None else JobStatus(external_id, CenterJobState.QUEUED)

    async def cancel(self, external_id: str) -> None:
        await self._enter("cancel")
        if external_id not in self.submitted:
            raise JobNotFound(external_id, center=self.name)

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        await self._enter("logs")
        if external_id not in self.submitted:
            raise JobNotFound(external_id, center=self.name)
        return ""

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        await self._enter("read_log")
        if external_id not in self.submitted:
            raise JobNotFound(external_id, center=self.name)
        return LogChunk(b"", max(0, offset), max(0, offset))
