"""Billing periods: calendar months of the billing time zone, as UTC instants, start inclusive
and end exclusive, one after another without gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.billing.periods import Calendar

ZONES = ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Pacific/Chatham")


def test_a_utc_month_from_its_first_instant_to_the_next_months() -> None:
    december = Calendar("UTC").parse("2026-12")
    assert december.label == "2026-12"
    assert (december.start, december.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert december.contains(december.start) and not december.contains(december.end)
    assert december.contains(december.end - timedelta(microseconds=1))


def test_a_month_in_shanghai_starts_at_four_in_the_afternoon_utc_the_day_before() -> None:
    march = Calendar("Asia/Shanghai").period(2026, 3)
    assert march.start == datetime(2026, 2, 28, 16, tzinfo=UTC) and march.end == datetime(2026, 3, 31, 16, tzinfo=UTC)
    assert march.start.tzinfo == UTC
    assert Calendar("Asia/Shanghai").period_of(datetime(2026, 3, 31, 16, tzinfo=UTC)).label == "2026-04"


def test_a_month_with_a_clock_change_is_an_hour_short() -> None:
    march = Calendar("Europe/Berlin").period(2026, 3)
    assert march.end - march.start == timedelta(days=31, hours=-1)
    october = Calendar("Europe/Berlin").period(2026, 10)
    assert october.end - october.start == timedelta(days=31, hours=1)


def test_labels_other_than_year_dash_month_are_refused() -> None:
    calendar = Calendar()
    assert calendar.parse("0001-01").start == datetime(1, 1, 1, tzinfo=UTC)
    for label in ("2026-13", "2026-00", "2026-1", "26-01", "2026/01", "2026-01-01", " 2026-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            calendar.parse(label)


def test_the_following_period_starts_where_one_ends() -> None:
    calendar = Calendar("Asia/Shanghai")
    assert calendar.following(calendar.parse("2026-12")).label == "2027-01"
    assert calendar.local(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai"))


instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC))


@given(zone=st.sampled_from(ZONES), instant=instants)
def test_every_instant_falls_in_the_period_of_its_local_month(zone: str, instant: datetime) -> None:
    calendar = Calendar(zone)
    period = calendar.period_of(instant)
    local = instant.astimezone(ZoneInfo(zone))
    assert period.contains(instant) and period.label == f"{local.year:04d}-{local.month:02d}"
    assert calendar.parse(period.label) == period
    after = calendar.following(period)
    assert after.start == period.end and not period.contains(after.start) and after.contains(after.start)
    assert timedelta(days=27) < period.end - period.start < timedelta(days=32)
