"""The money arithmetic of metering: exact products rounded once, half up, to six places; each
started second billed, never more than the hold; quotes and the terms kept on a job."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from resolvers.billing.pricing import (
    billed_seconds,
    chosen_terms,
    cost,
    make_quote,
    max_hold,
    max_seconds,
    money,
    provisional_terms,
    quote_terms,
    standard_unit_hours,
)
from tests.billing_harness import exact_cost

T0 = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
prices = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("100000"), places=6)
units = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal("10000"), places=9)


@dataclass(frozen=True)
class Candidate:
    center_id: int


def test_money_rounds_half_up_to_six_places() -> None:
    assert money(Decimal("0.0000005")) == Decimal("0.000001")
    assert money(Decimal("0.00000049999")) == Decimal("0.000000")
    assert money(Decimal("-0.0000005")) == Decimal("-0.000001")  # half up means away from zero
    assert money(Decimal("123456789012345.1234565")) == Decimal("123456789012345.123457")  # no precision lost to the context


def test_durations_in_minutes_become_whole_seconds_by_their_decimal_text() -> None:
    assert [max_seconds(minutes) for minutes in (0.1, 0.7, 1.0, 0.02, 90.25, 1e-9)] == [6, 42, 60, 2, 5415, 1]


def test_each_started_second_is_billed() -> None:
    def billed(delta: timedelta, limit: int = 3600) -> int:
        return billed_seconds(T0, T0 + delta, limit)

    assert billed(timedelta(0)) == 0
    assert billed(timedelta(microseconds=1)) == 1
    assert billed(timedelta(seconds=1)) == 1
    assert billed(timedelta(seconds=1, microseconds=1)) == 2
    assert billed(timedelta(days=2, seconds=3), limit=10**9) == 2 * 86_400 + 3
    assert billed(timedelta(seconds=-5)) == 0  # clocks disagree: never a negative charge
    assert billed(timedelta(hours=2), limit=60) == 60


def test_the_hours_are_kept_to_nine_places_and_the_amount_is_not_rounded_from_them() -> None:
    # 0.0032 units x 1 device x 1 s = 0.00000088888... unit-hours
    assert standard_unit_hours(Decimal("0.0032"), 1, 1) == Decimal("0.000000889")
    # at 1000.00 an hour the amount comes from the exact product (0.000888...), not from 0.000000889 x 1000
    assert cost(Decimal("0.0032"), 1, 1, Decimal("1000")) == Decimal("0.000889")
    assert cost(Decimal("0.0032"), 1, 1, Decimal("100000")) == Decimal("0.088889")


def test_a_quote_rounds_its_terms_and_holds_its_whole_duration() -> None:
    quote = make_quote(Decimal("2.0000005"), "CNY", 3.12, 2, 90)
    assert quote.unit_price == Decimal("2.000001") and quote.units_per_device == Decimal("3.120000000") and quote.max_seconds == 5400
    assert quote.hold == cost(quote.units_per_device, 2, 5400, quote.unit_price)
    assert quote.job_columns() == {
        "unit_price": quote.unit_price,
        "currency": "CNY",
        "units_per_device": quote.units_per_device,
        "hold_amount": quote.hold,
    }


def test_terms_kept_on_the_placement_come_back_as_the_same_job_columns() -> None:
    quotes = {1: make_quote(Decimal("0.90"), "CNY", 0.0032, 4, 30), 2: make_quote(Decimal("0.30"), "CNY", 3.12, 1, 30)}
    kept = quote_terms(quotes)
    assert set(kept) == {"1", "2"} and all(isinstance(value, str) for terms in kept.values() for value in terms.values())
    for center_id, quote in quotes.items():
        assert chosen_terms(kept[str(center_id)]) == quote.job_columns()
    assert chosen_terms(None) == {} and chosen_terms({}) == {}


def test_until_placement_a_job_holds_the_most_it_could_cost_anywhere() -> None:
    cheap, dear = make_quote(Decimal("0.10"), "CNY", 1, 1, 60), make_quote(Decimal("9.00"), "CNY", 1, 1, 60)
    quotes = {1: cheap, 2: dear}
    assert max_hold(quotes) == dear.hold and max_hold({}) == Decimal(0)
    terms = provisional_terms(quotes, [Candidate(7), Candidate(1), Candidate(2)])
    assert terms == {**cheap.job_columns(), "hold_amount": dear.hold}  # the first candidate with a quote, the largest hold
    assert provisional_terms(quotes, [Candidate(7)]) == {}


@given(units=units, devices=st.integers(1, 64), seconds=st.integers(0, 10**7), price=prices)
def test_the_amount_is_the_exact_product_rounded_once(units: Decimal, devices: int, seconds: int, price: Decimal) -> None:
    assert cost(units, devices, seconds, price) == exact_cost(units, devices, seconds, price)
    hours = Fraction(units) * devices * seconds / 3600
    assert abs(Fraction(standard_unit_hours(units, devices, seconds)) - hours) <= Fraction(1, 2 * 10**9)


@given(units=units, devices=st.integers(1, 64), minutes=st.floats(0.001, 10_000), ran=st.floats(-100, 10**6), price=prices)
def test_a_charge_never_exceeds_the_hold(units: Decimal, devices: int, minutes: float, ran: float, price: Decimal) -> None:
    quote = make_quote(price, "CNY", units, devices, minutes)
    elapsed = timedelta(seconds=ran)
    seconds = billed_seconds(T0, T0 + elapsed, quote.max_seconds)
    assert seconds == min(quote.max_seconds, max(0, math.ceil(Fraction(elapsed // timedelta(microseconds=1), 10**6))))
    assert cost(quote.units_per_device, devices, seconds, quote.unit_price) <= quote.hold


@given(minutes=st.floats(0, 10**6))
def test_whole_seconds_cover_the_duration_and_no_more(minutes: float) -> None:
    seconds = max_seconds(minutes)
    exact = Fraction(str(minutes)) * 60
    assert seconds >= exact > seconds - 1
