"""The money arithmetic of metering, exact and pure.

A job is quoted at submission: the center's price per standard-unit-hour for its
accelerator, the catalog's standard units per device, and a hold of its maximum cost
(the requested duration). When it ends it is charged for the seconds it ran, each
started second counted, never more than the requested duration, so the charge never
exceeds the hold:

    standard-unit-seconds = units per device x devices x seconds   (exact)
    standard-unit-hours   = standard-unit-seconds / 3600          (to 9 places)
    amount                = standard-unit-seconds x price / 3600  (to 6 places, half up)

The amount is rounded once, from the exact product, never from rounded hours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

MONEY_PLACES = Decimal("0.000001")
QUANTITY_PLACES = Decimal("0.000000001")
SECONDS_PER_HOUR = Decimal(3600)
_EXACT = Context(prec=60)


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, ROUND_HALF_UP, context=_EXACT)


def quantity(value: Decimal) -> Decimal:
    return value.quantize(QUANTITY_PLACES, ROUND_HALF_UP, context=_EXACT)


@dataclass(frozen=True)
class Quote:
    """The terms a job was accepted on."""

    unit_price: Decimal  # per standard-unit-hour
    currency: str
    units_per_device: Decimal
    devices: int
    max_seconds: int

    @property
    def hold(self) -> Decimal:
        """The most the job can cost: every second it may run."""
        return cost(self.units_per_device, self.devices, self.max_seconds, self.unit_price)

    def job_columns(self) -> dict[str, Any]:
        """What a job row keeps of its quote."""
        return {
            "unit_price": self.unit_price,
            "currency": self.currency,
            "units_per_device": self.units_per_device,
            "hold_amount": self.hold,
        }


def make_quote(unit_price: Decimal, currency: str, units_per_device: float | Decimal, devices: int, max_minutes: float) -> Quote:
    return Quote(
        unit_price=money(Decimal(unit_price)),
        currency=currency,
        units_per_device=quantity(Decimal(str(units_per_device))),
        devices=devices,
        max_seconds=max_seconds(max_minutes),
    )


def max_seconds(max_minutes: float) -> int:
    """Whole seconds of a duration in minutes, rounded up (via the decimal text: 0.1 min is 6 s)."""
    return math.ceil(Decimal(str(max_minutes)) * 60)


def billed_seconds(started_at: datetime, ended_at: datetime, limit: int) -> int:
    """Each started second counts; never below zero nor above the requested duration."""
    elapsed = ended_at - started_at
    micros = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    return max(0, min(limit, -(-micros // 1_000_000)))


def standard_unit_hours(units_per_device: Decimal, devices: int, seconds: int) -> Decimal:
    return quantity(_EXACT.divide(units_per_device * devices * seconds, SECONDS_PER_HOUR))


def cost(units_per_device: Decimal, devices: int, seconds: int, unit_price: Decimal) -> Decimal:
    return money(_EXACT.divide(_EXACT.multiply(units_per_device * devices * seconds, unit_price), SECONDS_PER_HOUR))


def quote_terms(quotes: Mapping[int, Quote]) -> dict[str, dict[str, str]]:
    """Each center's terms, as kept on the job's placement until a center is chosen."""
    return {
        str(center_id): {
            "unitPrice": str(quote.unit_price),
            "currency": quote.currency,
            "unitsPerDevice": str(quote.units_per_device),
            "hold": str(quote.hold),
        }
        for center_id, quote in quotes.items()
    }


def max_hold(quotes: Mapping[int, Quote]) -> Decimal:
    """Held at submission: the most the job can cost wherever it lands."""
    return max((quote.hold for quote in quotes.values()), default=Decimal(0))


def provisional_terms(quotes: Mapping[int, Quote], candidates: Sequence[Any]) -> dict[str, Any]:
    """Job columns until placement: the best candidate's terms, holding the largest hold."""
    for candidate in candidates:
        quote = quotes.get(candidate.center_id)
        if quote is not None:
            return {**quote.job_columns(), "hold_amount": max_hold(quotes)}
    return {}


def chosen_terms(terms: Mapping[str, Any] | None) -> dict[str, Any]:
    """Job columns once a center is chosen: its quoted terms, and the hold lowered to them."""
    if not terms:
        return {}
    return {
        "unit_price": Decimal(terms["unitPrice"]),
        "currency": terms["currency"],
        "units_per_device": Decimal(terms["unitsPerDevice"]),
        "hold_amount": Decimal(terms["hold"]),
    }


def cost_so_far(
    unit_price: Decimal, units_per_device: Decimal, devices: int, started_at: datetime, now: datetime, max_minutes: float
) -> Decimal:
    """What a running job has cost by ``now`` at its quoted terms: the amount it would be
    charged if it ended now (each started second, at most the requested duration)."""
    return cost(units_per_device, devices, billed_seconds(started_at, now, max_seconds(max_minutes)), unit_price)
