"""A followed job's view: events applied once each, in order, from the link or a poll alike."""

from __future__ import annotations

from connectors.base import CenterJobState
from connectors.peer.views import JobView


def event(seq: int, kind: str = "STATE", state: str | None = None, step: int | None = None) -> dict[str, object]:
    progress = {"fraction": step / 3, "step": step, "totalSteps": 3, "at": "2026-12-02T08:00:00+00:00"} if step else None
    return {"seq": seq, "kind": kind, "state": state, "progress": progress, "at": "2026-12-02T08:00:00+00:00"}


def test_events_apply_once_in_order_and_number_the_progress_reports() -> None:
    view = JobView("Sm9iOjE")
    assert view.apply_event(event(1, state="PENDING"))
    assert view.apply_event(event(2, state="RUNNING"))
    assert view.apply_event(event(3, "PROGRESS", step=1))
    assert not view.apply_event(event(3, "PROGRESS", step=1))  # the link and a poll both brought it
    assert not view.apply_event(event(5, "PROGRESS", step=3))  # a gap: left for a poll to fill in order
    assert view.apply_event(event(4, "PROGRESS", step=2))
    assert [report.ordinal for report in view.status(0).progress] == [1, 2]
    assert view.state is CenterJobState.RUNNING and view.last_seq == 4
    assert [report.step for report in view.status(progress_after=1).progress] == [2]


def test_the_state_comes_from_the_events_and_the_end_fields_from_the_job() -> None:
    view = JobView("Sm9iOjI")
    view.apply_event(event(1, state="QUEUED"))
    view.apply_job({"state": "SUCCEEDED", "exitCode": None, "startedAt": "2026-12-02T08:00:00+00:00"})
    assert view.state is CenterJobState.QUEUED and not view.ended  # the job's fields ran ahead of its events
    view.apply_event(event(2, state="CANCELLING"))
    assert view.state is CenterJobState.RUNNING  # still running until the peer has stopped it
    view.apply_event(event(3, state="SUCCEEDED"))
    view.apply_job({"state": "SUCCEEDED", "exitCode": 0, "finishedAt": "2026-12-02T08:00:05+00:00", "failureReason": None})
    status = view.status(0)
    assert view.ended and status.exit_code == 0 and status.finished_at is not None and status.started_at is not None


def test_a_read_from_before_the_end_does_not_stand_for_the_end_s_fields() -> None:
    # a poll read the job while it ran; the link brought its end while the poll's answer was on its way
    view = JobView("Sm9iOjM")
    view.apply_event(event(1, state="RUNNING"))
    view.apply_event(event(2, state="FAILED"))
    view.apply_job({"state": "RUNNING", "exitCode": None, "startedAt": "2026-12-02T08:00:00+00:00"})
    assert view.ended and not view.known  # so the next status call reads the job again
    view.apply_job({"state": "FAILED", "exitCode": 127, "finishedAt": "2026-12-02T08:00:01+00:00"})
    assert view.known and view.status(0).exit_code == 127
