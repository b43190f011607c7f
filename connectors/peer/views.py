"""What the connector knows of each job it follows at the peer, built from the peer's events.

The peer's events have a ``seq`` without gaps; a view applies each at most once, in order,
whether it came over the live link or from a poll, so the two can overlap freely. Progress
reports are counted from 1 in the order the peer logged them: the ordinals the gateway asks
``status`` about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import CenterJobState, JobStatus, ProgressReport
from connectors.progress import ProgressBacklog

#: the peer's job states, as a center's states (a peer's own waiting is this center's queue)
STATES = {
    "PENDING": CenterJobState.QUEUED,
    "QUEUED": CenterJobState.QUEUED,
    "STARTING": CenterJobState.STARTING,
    "RUNNING": CenterJobState.RUNNING,
    "CANCELLING": CenterJobState.RUNNING,
    "SUCCEEDED": CenterJobState.SUCCEEDED,
    "FAILED": CenterJobState.FAILED,
    "CANCELLED": CenterJobState.CANCELLED,
}


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


@dataclass
class JobView:
    external_id: str
    last_seq: int = 0
    state: CenterJobState = CenterJobState.QUEUED
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: ProgressBacklog = field(default_factory=ProgressBacklog)
    #: the peer said it does not know the job
    missing: bool = False
    #: the view is current: events after ``last_seq`` will arrive over the live link
    live: bool = False
    #: the job's own fields were read at least once
    known: bool = False

    def apply_job(self, job: dict[str, Any]) -> None:
        # the state comes from the events alone: the terminal one is logged after every progress report
        read_state = STATES.get(str(job.get("state")))
        if self.ended and not (read_state is not None and read_state.terminal):
            # read before the end (a poll that crossed the end's event on the link, or the job ended
            # between the poll's job fields and its events): the end's exit code is still to be read
            return
        self.known = True
        self.missing = False
        self.exit_code = job.get("exitCode")
        self.reason = job.get("failureReason")
        self.started_at = _time(job.get("startedAt")) or self.started_at
        self.finished_at = _time(job.get("finishedAt")) or self.finished_at

    def apply_event(self, event: dict[str, Any]) -> bool:
        """Apply one event of the peer's log; False when it was applied before (or is out of order)."""
        seq = int(event.get("seq") or 0)
        if seq != self.last_seq + 1:
            return False
        self.last_seq = seq
        report = event.get("progress")
        if event.get("kind") == "PROGRESS" and isinstance(report, dict):
            self.progress.add(
                ProgressReport(
                    ordinal=self.progress.next_ordinal(),
                    at=_time(report.get("at")) or _time(event.get("at")) or datetime.now().astimezone(),
                    fraction=report.get("fraction"),
                    step=report.get("step"),
                    total_steps=report.get("totalSteps"),
                    message=report.get("message"),
                    metrics=report.get("metrics"),
                )
            )
        state = STATES.get(str(event.get("state"))) if event.get("kind") == "STATE" else None
        if state is not None:
            self.state = state
        return True

    @property
    def ended(self) -> bool:
        return self.state.terminal

    def status(self, progress_after: int) -> JobStatus:
        return JobStatus(
            external_id=self.external_id,
            state=self.state,
            exit_code=self.exit_code,
            reason=self.reason,
            started_at=self.started_at,
            finished_at=self.finished_at,
            progress=self.progress.after(progress_after),
        )


@dataclass
class ServiceView:
    """What the live link has told of one inference service at the peer: how far its events go
    (``last_seq``, where a resubscription resumes), the last state and ready count they gave,
    and whether something happened since the origin last read the service."""

    remote_id: str
    last_seq: int = 0
    state: str | None = None
    ready: int | None = None
    #: an event came (or the link subscribed again) since the last read: read the service now
    changed: bool = True
    #: the peer said it does not know the service
    missing: bool = False

    def apply_event(self, event: dict[str, Any]) -> bool:
        """Apply one event of the peer's log; False when it was applied before (or is out of order)."""
        seq = int(event.get("seq") or 0)
        if seq <= self.last_seq:
            return False
        # a gap (seq beyond the next) cannot lose anything here: the read it triggers is the whole service
        self.last_seq = seq
        if event.get("kind") == "STATE" and event.get("state"):
            self.state = str(event["state"])
        if event.get("replicasReady") is not None:
            self.ready = int(event["replicasReady"])
        self.changed = True
        return True
