"""Progress lines: ``AICN_PROGRESS {json}`` becomes a report; anything else a job prints,
however malformed, is ignored and never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ProgressReport
from connectors.progress import MARKER, ProgressBacklog, parse_progress_line

AT = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def parse(payload: Any, ordinal: int = 1) -> Any:
    return parse_progress_line(f"{MARKER} {json.dumps(payload)}", ordinal, AT)


def test_a_full_line_becomes_a_report() -> None:
    line = 'AICN_PROGRESS {"fraction": 0.5, "step": 5, "totalSteps": 10, "message": "epoch 5", "metrics": {"loss": 0.3}}'
    report = parse_progress_line(line, 7, AT)
    assert report is not None
    assert (report.ordinal, report.at, report.fraction, report.step, report.total_steps) == (7, AT, 0.5, 5, 10)
    assert report.message == "epoch 5" and report.metrics == {"loss": 0.3}


def test_every_key_is_optional() -> None:
    for line in ("AICN_PROGRESS", "AICN_PROGRESS {}", "  AICN_PROGRESS   {}  \n"):
        report = parse_progress_line(line, 1, AT)
        assert report is not None
        assert (report.fraction, report.step, report.total_steps, report.message, report.metrics) == (None, None, None, None, None)


def test_total_steps_may_be_written_in_snake_case() -> None:
    assert parse({"total_steps": 4}).total_steps == 4
    assert parse({"totalSteps": 4, "total_steps": 9}).total_steps == 4


def test_other_lines_are_not_progress() -> None:
    for line in (
        "",
        "epoch 5 done",
        "progress AICN_PROGRESS {}",
        'AICN_PROGRESS {"fraction": ',
        "AICN_PROGRESS [1, 2]",
        "AICN_PROGRESS 0.5",
    ):
        assert parse_progress_line(line, 1, AT) is None, line


def test_the_fraction_is_clamped_and_must_be_a_finite_number() -> None:
    assert parse({"fraction": 1.5}).fraction == 1.0
    assert parse({"fraction": -0.2}).fraction == 0.0
    assert parse({"fraction": 1}).fraction == 1.0
    assert parse({"fraction": float("nan")}).fraction is None  # json.dumps writes NaN, as a job's json would
    assert parse({"fraction": float("inf")}).fraction is None
    assert parse({"fraction": "0.5"}).fraction is None
    assert parse({"fraction": True}).fraction is None


def test_values_of_the_wrong_type_are_dropped_one_by_one() -> None:
    report = parse({"step": 2.5, "totalSteps": "10", "message": 42, "metrics": [1, 2], "fraction": 0.25})
    assert (report.step, report.total_steps, report.message, report.metrics, report.fraction) == (None, None, None, None, 0.25)
    assert parse({"step": True}).step is None
    assert parse({"step": 2**31}).step is None and parse({"step": 2**31 - 1}).step == 2**31 - 1
    assert parse({"step": -(2**31)}).step == -(2**31) and parse({"step": -(2**31) - 1}).step is None


def test_a_long_message_is_cut_to_2000_characters() -> None:
    assert parse({"message": "x" * 5000}).message == "x" * 2000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(
    st.sampled_from(["fraction", "step", "totalSteps", "total_steps", "message", "metrics", "other"]), json_values, max_size=7
)


def finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    return [finite(item) for item in value] if isinstance(value, list) else value


def test_metrics_that_are_not_finite_numbers_become_null() -> None:
    report = parse({"metrics": {"loss": float("nan"), "deep": [{"x": float("-inf")}, 2.5], "ok": 1}})
    assert report.metrics == {"loss": None, "deep": [{"x": None}, 2.5], "ok": 1}
    json.dumps(report.metrics, allow_nan=False)  # what PostgreSQL's json type and clients accept


# generating nested payloads is slow on a loaded machine; the code under test is not what is slow
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(payloads)
def test_any_object_gives_a_report_within_bounds(payload: dict[str, Any]) -> None:
    report = parse_progress_line(f"{MARKER} {json.dumps(payload)}", 3, AT)
    assert report is not None and report.ordinal == 3 and report.at == AT
    assert report.fraction is None or 0.0 <= report.fraction <= 1.0
    for value in (report.step, report.total_steps):
        assert value is None or (type(value) is int and -(2**31) <= value < 2**31)
    assert report.message is None or (isinstance(report.message, str) and len(report.message) <= 2000)
    assert report.metrics is None or isinstance(report.metrics, dict)
    if isinstance(payload.get("metrics"), dict):
        json.dumps(report.metrics, allow_nan=False)
        assert report.metrics == finite(payload["metrics"])


@given(st.text(max_size=200))
def test_no_line_ever_raises(text: str) -> None:
    for line in (text, MARKER + text, f"{MARKER} {text}"):
        report = parse_progress_line(line, 1, AT)
        assert report is None or report.ordinal == 1
    if not text.strip().startswith(MARKER):
        assert parse_progress_line(text, 1, AT) is None


def backlog_of(count: int) -> ProgressBacklog:
    backlog = ProgressBacklog()
    for _ in range(count):
        backlog.add(ProgressReport(ordinal=backlog.next_ordinal(), at=AT))
    return backlog


def test_a_backlog_forgets_what_the_caller_has_recorded() -> None:
    backlog = backlog_of(5)
    assert [report.ordinal for report in backlog.after(0)] == [1, 2, 3, 4, 5]  # nothing recorded: nothing forgotten
    assert [report.ordinal for report in backlog.after(3)] == [4, 5]
    assert backlog.held == 2 and backlog.count == 5 and backlog.next_ordinal() == 6
    assert [report.ordinal for report in backlog.after(1)] == [4, 5]  # a stale ask: what is held
    backlog.add(ProgressReport(ordinal=backlog.next_ordinal(), at=AT))
    assert [report.ordinal for report in backlog.after(5)] == [6]
    assert backlog.held == 1


def test_an_ask_past_the_last_report_forgets_all_and_numbers_on() -> None:
    backlog = backlog_of(2)
    assert backlog.after(9) == ()
    assert backlog.held == 0 and backlog.count == 2
    backlog.add(ProgressReport(ordinal=backlog.next_ordinal(), at=AT))
    assert [report.ordinal for report in backlog.after(2)] == [3]


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=30))
def test_a_backlog_answers_as_the_whole_history_would_above_what_was_asked(asks: list[int]) -> None:
    """Whatever the asks, an answer is the history's reports past the ask and past every earlier ask."""
    backlog, history, forgotten = backlog_of(0), [], 0
    for ask in asks:
        for _ in range(3):
            report = ProgressReport(ordinal=backlog.next_ordinal(), at=AT)
            backlog.add(report)
            history.append(report)
        forgotten = max(forgotten, min(ask, len(history)))
        assert backlog.after(ask) == tuple(report for report in history if report.ordinal > max(ask, forgotten))
        assert backlog.held == len(history) - forgotten
