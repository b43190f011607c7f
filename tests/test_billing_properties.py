"""Properties of metering and billing over random job histories, on real SQLite and PostgreSQL.

Each example is a fresh account with a random opening balance and a random history:
jobs submitted (some refused for want of balance), started or not, ended in any
terminal state at any time over four months (some ended twice, some by two ledgers
racing), bills finalized, adjustments made. Then, whatever happened:

* every bill's stored total is the sum of its lines, as Python and as the database add them;
* the lines are exactly the usage records plus the adjustments;
* balance + everything billed = the opening balance; holds are the unfinished jobs' holds;
* a job that ran and ended has exactly one usage record, with the oracle's amount, no more
  than its hold, and its USAGE event just before its terminal STATE event; no other job has one;
* a submission was refused exactly when its hold exceeded what was available;
* a finalized bill never changes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from resolvers.access.viewer import Viewer
from resolvers.billing.pricing import max_seconds
from resolvers.common.ids import to_global_id
from tests.billing_harness import Backend, Billing, exact_cost, later, quote_for
from tests.conftest import DIALECTS, require_service

pytestmark = pytest.mark.both_databases  # bills must add up as each database adds them

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400.0
MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")

jobs = st.fixed_dictionaries(
    {
        "devices": st.integers(1, 4),
        "price": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5"), places=2),
        "units": st.sampled_from(["0.0032", "3.12", "9.894", "1.48", "0.9604"]),
        "max_minutes": st.sampled_from([0.1, 0.5, 1.0, 7.5, 60.0, 90.25]) | st.floats(0.02, 120),
        "start": st.floats(0, 100 * DAY),
        "runs": st.one_of(st.integers(0, 600).map(float), st.floats(0, 3 * 3600), st.none()),  # None: never started
        "ending": st.sampled_from(["SUCCEEDED", "FAILED", "CANCELLED", None]),  # None: still going
        "twice": st.sampled_from([None, "again", "race"]),
    }
)
_adjust = st.tuples(
    st.just("adjust"), st.decimals(min_value=Decimal("-50"), max_value=Decimal("50"), places=6).filter(bool), st.integers(0, 9)
)
_finalize = st.tuples(st.just("finalize"), st.sampled_from(MONTHS))
# explicit weights: six jobs to two adjustments to two finalizations
steps = st.lists(
    st.integers(0, 9).flatmap(lambda n: st.tuples(st.just("job"), jobs) if n < 6 else _adjust if n < 8 else _finalize),
    min_size=2,
    max_size=10,
)
_rich = st.integers(10_000, 500_000).map(lambda cents: Decimal(cents).scaleb(-2))  # 100.00 to 5000.00
_poor = st.sampled_from([Decimal(0), Decimal("0.05")])
openings = st.integers(0, 4).flatmap(lambda n: _poor if n == 0 else _rich)  # a fifth can barely pay


@pytest.fixture(scope="module", params=DIALECTS)
def harness(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[asyncio.AbstractEventLoop, Backend, Backend]]:
    if request.param == "postgres":
        require_service("127.0.0.1", 5432, "PostgreSQL")
    loop = asyncio.new_event_loop()
    backend = loop.run_until_complete(Backend.open(request.param, str(tmp_path_factory.mktemp("billing"))))
    try:
        yield loop, backend, backend
    finally:
        loop.run_until_complete(backend.close())
        loop.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opening=openings, history=steps)
def test_random_histories_add_up(harness: tuple[asyncio.AbstractEventLoop, Backend, Backend], opening: Decimal, history: list[Any]) -> None:
    loop, backend, _ = harness
    loop.run_until_complete(_check_history(backend, opening, history))


async def _check_history(backend: Backend, opening: Decimal, history: list[Any]) -> None:
    billing = Billing(backend, opening)
    rival_db = await backend.second_database()
    rival = Billing(backend, opening, db=rival_db)
    try:
        await billing.new_account()
        admin = Viewer(account_id=billing.account_id, is_admin=True)
        holds: dict[int, Decimal] = {}  # unfinished jobs' holds, as the model sees them
        frozen: dict[int, tuple[Decimal, int]] = {}
        for step in history:
            balance, bills = await billing.balance_and_bills(opening)
            if step[0] == "job":
                spec = step[1]
                quote = quote_for(spec["price"], spec["units"], spec["devices"], spec["max_minutes"])
                fits = quote.hold <= balance - sum(holds.values(), Decimal(0))
                job_id = await billing.submit(quote, spec["max_minutes"])
                assert (job_id is not None) == fits, (quote.hold, balance, holds)
                event("submission refused" if job_id is None else "submission accepted")
                if job_id is None:
                    continue
                holds[job_id] = quote.hold
                began = later(EPOCH, spec["start"])
                if spec["runs"] is not None:
                    await billing.start(job_id, began)
                if spec["ending"] is None:
                    continue
                ended = later(began, spec["runs"] or 0.0)
                event(f"ended twice: {spec['twice']}")
                if spec["twice"] == "race":
                    await asyncio.gather(
                        billing.end(job_id, spec["ending"], ended), rival.end(job_id, spec["ending"], ended, ledger=rival.ledger)
                    )
                else:
                    await billing.end(job_id, spec["ending"], ended)
                    if spec["twice"] == "again":
                        await rival.end(job_id, spec["ending"], ended, ledger=rival.ledger)
                del holds[job_id]
            elif step[0] == "adjust" and bills:
                target = bills[step[2] % len(bills)]
                outcome = await billing.service.adjust(admin, to_global_id("Bill", target.id), step[1], "adjustment")
                assert outcome.errors == [] and outcome.bill is not None and outcome.bill.status == "OPEN"
                assert outcome.bill.id == target.id or target.status == "FINALIZED"
            elif step[0] == "finalize":
                bill = await billing.service.finalize_period(billing.account_name, step[1])
                frozen.setdefault(bill.id, (bill.total, bill.line_count))
        final = await billing.snapshot()
        _check_invariants(final, opening, holds, frozen)
        event(f"usage records: {min(len(final.usages), 3)}+")
        event(f"bills: {min(len(final.bills), 3)}+")
        if any(line.kind == "ADJUSTMENT" and line.corrects_bill_id != line.bill_id for line in final.lines):
            event("adjustment moved past a finalized bill")
        if any(
            usage.bill_id != bill.id
            for usage in final.usages
            for bill in final.bills
            if bill.period == _period(usage.ended_at) and bill.status == "FINALIZED"
        ):
            event("usage moved past a finalized bill")
    finally:
        await rival_db.dispose()


def _period(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m")


def _check_invariants(snap: Any, opening: Decimal, holds: dict[int, Decimal], frozen: dict[int, tuple[Decimal, int]]) -> None:
    # bills: stored total = sum of lines, in Python and in the database
    for bill in snap.bills:
        lines = [line for line in snap.lines if line.bill_id == bill.id]
        assert bill.total == sum((line.amount for line in lines), Decimal(0)) == snap.database_sums.get(bill.id, Decimal(0))
        assert bill.line_count == len(lines)
        if bill.id in frozen:
            assert bill.status == "FINALIZED" and (bill.total, bill.line_count) == frozen[bill.id]
    # lines = usage records + adjustments, one line per record, the same amount
    usage_lines = {line.usage_id: line for line in snap.lines if line.kind == "USAGE"}
    assert set(usage_lines) == {usage.id for usage in snap.usages}
    for usage in snap.usages:
        assert usage_lines[usage.id].amount == usage.amount and usage_lines[usage.id].bill_id == usage.bill_id
    assert all(line.usage_id is None for line in snap.lines if line.kind == "ADJUSTMENT")
    # conservation
    billed = sum((line.amount for line in snap.lines), Decimal(0))
    balance = snap.account.balance if snap.account else opening
    assert balance + billed == opening
    unfinished = {job.id: job.hold_amount for job in snap.jobs if job.state not in ("SUCCEEDED", "FAILED", "CANCELLED")}
    assert unfinished == holds
    if snap.account is not None:  # the running total the triggers keep: never drifted from the jobs
        assert snap.account.held == sum(holds.values(), Decimal(0))
    # one record per job that ran, none for the others, the oracle's amount, within the hold
    assert snap.jobs_with_two_records == []
    by_job = {usage.job_id: usage for usage in snap.usages}
    for job in snap.jobs:
        events = snap.events_of(job.id)
        kinds = [event.kind for event in events]
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        ended = job.state in ("SUCCEEDED", "FAILED", "CANCELLED")
        endings = [event for event in events if event.kind == "STATE" and event.state in ("SUCCEEDED", "FAILED", "CANCELLED")]
        assert len(endings) == (1 if ended else 0)
        if ended and job.started_at is not None:
            usage = by_job[job.id]
            micros = (job.finished_at - job.started_at) // timedelta(microseconds=1)
            started_seconds = max(0, -(-micros // 1_000_000))  # each started second
            seconds = min(max_seconds(job.request.max_duration_minutes), started_seconds)
            assert usage.seconds == seconds, (usage.seconds, micros)
            assert usage.amount == exact_cost(job.units_per_device, job.request.devices, seconds, job.unit_price)
            assert usage.amount <= job.hold_amount
            assert kinds.count("USAGE") == 1 and kinds[-2:] == ["USAGE", "STATE"] and events[-1].state == job.state
            assert (usage.started_at, usage.ended_at) == (job.started_at, job.finished_at)
        else:
            assert job.id not in by_job and "USAGE" not in kinds
