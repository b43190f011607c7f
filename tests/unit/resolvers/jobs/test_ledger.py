"""The job state machine: ``plan_changes`` brings a job from its recorded state to what its
center reports, filling in the states a poll missed; ``EventRecord`` crosses the bus intact."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import CenterJobState, JobStatus, ProgressReport
from resolvers.jobs.ledger import Change, EventRecord, plan_changes
from store.tables import JobRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIVE = ("PENDING", "QUEUED", "STARTING", "RUNNING", "CANCELLING")
ENDS = ("SUCCEEDED", "FAILED", "CANCELLED")
#: the order a subscriber sees a job's life in
LIFE = ("PENDING", "QUEUED", "STARTING", "RUNNING")


def job(state: str, *, progress_count: int = 0, started_at: datetime | None = None) -> JobRow:
    return JobRow(state=state, progress_count=progress_count, started_at=started_at)


def reports(ordinals: range) -> tuple[ProgressReport, ...]:
    return tuple(ProgressReport(ordinal=n, at=T0 + timedelta(seconds=n), step=n, message=f"step {n}") for n in ordinals)


def states(change: Change) -> list[str]:
    return [event["state"] for event in change.events if event["kind"] == "STATE"]


def apply(row: JobRow, change: Change) -> JobRow:
    for column, value in change.columns.items():
        setattr(row, column, value)
    return row


def test_a_job_that_ended_never_changes_again() -> None:
    for recorded in ENDS:
        for reported in CenterJobState:
            change = plan_changes(job(recorded), JobStatus("x", reported, started_at=T0, progress=reports(range(1, 3))))
            assert not change and change.events == [] and change.columns == {}


def test_a_poll_that_missed_starting_fills_it_in() -> None:
    assert states(plan_changes(job("PENDING"), JobStatus("x", CenterJobState.RUNNING))) == ["STARTING", "RUNNING"]
    assert states(plan_changes(job("QUEUED"), JobStatus("x", CenterJobState.RUNNING))) == ["STARTING", "RUNNING"]
    assert states(plan_changes(job("STARTING"), JobStatus("x", CenterJobState.RUNNING))) == ["RUNNING"]
    assert states(plan_changes(job("PENDING"), JobStatus("x", CenterJobState.QUEUED))) == ["QUEUED"]


def test_a_job_that_ran_and_ended_between_polls_shows_every_state() -> None:
    change = plan_changes(job("QUEUED"), JobStatus("x", CenterJobState.SUCCEEDED, exit_code=0, started_at=T0, finished_at=T0))
    assert states(change) == ["STARTING", "RUNNING", "SUCCEEDED"]
    assert change.columns["state"] == "SUCCEEDED" and change.columns["exit_code"] == 0
    assert "failure_reason" not in change.columns


def test_a_job_that_failed_before_running_skips_running() -> None:
    change = plan_changes(job("PENDING"), JobStatus("x", CenterJobState.FAILED, exit_code=127, reason="EXIT_CODE: 127"))
    assert states(change) == ["STARTING", "FAILED"]
    assert change.columns["failure_reason"] == "EXIT_CODE: 127" and "started_at" not in change.columns
    assert change.events[-1]["message"] == "EXIT_CODE: 127"


def test_a_job_cancelled_before_it_ran_goes_straight_to_cancelled() -> None:
    change = plan_changes(job("QUEUED"), JobStatus("x", CenterJobState.CANCELLED))
    assert states(change) == ["CANCELLED"]
    assert change.columns["failure_reason"] == "CANCELLED"  # no reason given: the state is the reason


def test_a_cancelling_job_waits_for_its_end_without_moving_back() -> None:
    for reported in (CenterJobState.QUEUED, CenterJobState.STARTING, CenterJobState.RUNNING):
        assert states(plan_changes(job("CANCELLING", started_at=T0), JobStatus("x", reported))) == []
    assert states(plan_changes(job("CANCELLING", started_at=T0), JobStatus("x", CenterJobState.CANCELLED, started_at=T0))) == ["CANCELLED"]
    # the job may have finished before the cancel reached it: its real end is recorded
    assert states(plan_changes(job("CANCELLING"), JobStatus("x", CenterJobState.SUCCEEDED, exit_code=0))) == ["SUCCEEDED"]


def test_a_center_that_requeues_a_job_says_so() -> None:
    change = plan_changes(job("RUNNING", started_at=T0), JobStatus("x", CenterJobState.QUEUED))
    assert change.events == [{"kind": "STATE", "state": "QUEUED", "message": "requeued by the center", "at": None}]


def test_started_at_is_the_centers_time_or_now_and_is_set_once() -> None:
    reported = T0 - timedelta(minutes=5)
    assert plan_changes(job("STARTING"), JobStatus("x", CenterJobState.RUNNING, started_at=reported)).columns["started_at"] == reported
    before = datetime.now(UTC)
    stamped = plan_changes(job("STARTING"), JobStatus("x", CenterJobState.RUNNING)).columns["started_at"]
    assert before <= stamped <= datetime.now(UTC)
    assert (
        "started_at" not in plan_changes(job("RUNNING", started_at=T0), JobStatus("x", CenterJobState.RUNNING, started_at=reported)).columns
    )


def test_only_progress_reports_not_yet_recorded_become_events() -> None:
    change = plan_changes(
        job("RUNNING", progress_count=2, started_at=T0), JobStatus("x", CenterJobState.RUNNING, progress=reports(range(1, 6)))
    )
    progress = [event for event in change.events if event["kind"] == "PROGRESS"]
    assert [event["progress"]["step"] for event in progress] == [3, 4, 5]
    assert [event["at"] for event in progress] == [T0 + timedelta(seconds=n) for n in (3, 4, 5)]
    assert change.columns["progress_count"] == 5 and change.columns["progress"]["message"] == "step 5"
    assert progress[0]["progress"] == {
        "fraction": None,
        "step": 3,
        "totalSteps": None,
        "message": "step 3",
        "metrics": None,
        "at": (T0 + timedelta(seconds=3)).isoformat(),
    }


def test_progress_of_the_last_poll_comes_before_the_end() -> None:
    change = plan_changes(
        job("RUNNING", started_at=T0), JobStatus("x", CenterJobState.SUCCEEDED, exit_code=0, progress=reports(range(1, 3)), finished_at=T0)
    )
    assert [event["kind"] for event in change.events] == ["PROGRESS", "PROGRESS", "STATE"]
    assert change.columns["finished_at"] == T0


center_states = st.sampled_from(list(CenterJobState))


@st.composite
def situations(draw: st.DrawFn) -> tuple[JobRow, JobStatus]:
    recorded = draw(st.sampled_from(LIVE))
    seen = draw(st.integers(0, 4))
    # a job past STARTING has run: the ledger set its start when it did
    started = T0 if recorded in ("RUNNING", "CANCELLING") or draw(st.booleans()) else None
    reported = draw(center_states)
    status = JobStatus(
        "x",
        reported,
        exit_code=draw(st.none() | st.integers(0, 255)),
        reason=draw(st.none() | st.sampled_from(["TIME_LIMIT: 60s", "EXIT_CODE: 1", "LOST"])),
        started_at=draw(st.none() | st.just(T0)),
        finished_at=draw(st.none() | st.just(T0 + timedelta(hours=1))),
        progress=reports(range(1, draw(st.integers(0, 6)) + 1)),
    )
    return job(recorded, progress_count=seen, started_at=started), status


@given(situations())
def test_planning_again_after_applying_a_change_plans_nothing(situation: tuple[JobRow, JobStatus]) -> None:
    row, status = situation
    apply(row, plan_changes(row, status))
    assert not plan_changes(row, status)


@given(situations())
def test_a_change_never_moves_a_job_backwards_except_a_requeue(situation: tuple[JobRow, JobStatus]) -> None:
    row, status = situation
    before = row.state
    change = plan_changes(row, status)
    path = [before, *states(change)]
    steps = list(itertools.pairwise(path))
    for (earlier, later), event in zip(steps, [e for e in change.events if e["kind"] == "STATE"], strict=True):
        if later in ENDS:
            continue
        if event["message"] == "requeued by the center":
            assert later in LIFE and earlier in LIFE and LIFE.index(later) < LIFE.index(earlier)
        else:
            assert earlier in LIFE and LIFE.index(later) > LIFE.index(earlier), path
    if "state" in change.columns:
        assert change.columns["state"] == path[-1]


@given(situations())
def test_an_end_is_one_event_and_the_last_one(situation: tuple[JobRow, JobStatus]) -> None:
    row, status = situation
    change = plan_changes(row, status)
    ends = [event for event in change.events if event["kind"] == "STATE" and event["state"] in ENDS]
    if status.state.terminal:
        assert len(ends) == 1 and change.events[-1] is ends[0] and ends[0]["state"] == status.state.value
        if status.finished_at is not None:
            assert change.columns["finished_at"] == status.finished_at
        assert ("failure_reason" in change.columns) == (status.state != CenterJobState.SUCCEEDED)
    else:
        assert ends == [] and "finished_at" not in change.columns


@given(situations())
def test_a_job_that_ran_has_a_start_and_ends_through_running(situation: tuple[JobRow, JobStatus]) -> None:
    row, status = situation
    recorded = row.state
    change = plan_changes(row, status)
    ran = status.started_at is not None or bool(status.progress) or status.state == CenterJobState.RUNNING
    if ran and status.state.terminal and recorded != "CANCELLING":
        assert "RUNNING" in [recorded, *states(change)]
    if ran:
        assert apply(row, change).started_at is not None


event_records = st.builds(
    EventRecord,
    job_id=st.integers(1, 2**62),
    owner_id=st.integers(1, 2**62),
    seq=st.integers(1, 10_000),
    at=st.datetimes(timezones=st.just(UTC)),
    kind=st.sampled_from(["STATE", "PROGRESS", "USAGE", "LOG"]),
    state=st.none() | st.sampled_from(LIVE + ENDS),
    progress=st.none() | st.fixed_dictionaries({"fraction": st.floats(0, 1), "step": st.integers(0, 100)}),
    message=st.none() | st.text(max_size=40),
)


@given(event_records)
def test_an_event_record_crosses_the_bus_unchanged(record: EventRecord) -> None:
    assert EventRecord.from_message(record.to_message()) == record


def test_only_a_state_event_that_ends_the_job_is_terminal() -> None:
    def record(**fields: Any) -> EventRecord:
        return EventRecord(job_id=1, owner_id=1, seq=1, at=T0, **fields)

    assert [record(kind="STATE", state=state).terminal for state in ENDS] == [True, True, True]
    assert not any(record(kind="STATE", state=state).terminal for state in LIVE)
    assert not record(kind="USAGE", state="SUCCEEDED").terminal
