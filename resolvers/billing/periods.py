"""Billing periods: calendar months in the billing time zone, stored as UTC instants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_LABEL = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class BillingPeriod:
    """One calendar month: ``start`` inclusive, ``end`` exclusive, both in UTC."""

    label: str  # "YYYY-MM"
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


class Calendar:
    """Maps instants to the month they are billed in, in one time zone."""

    def __init__(self, time_zone: str = "UTC") -> None:
        self.zone = ZoneInfo(time_zone)

    def period(self, year: int, month: int) -> BillingPeriod:
        start = datetime(year, month, 1, tzinfo=self.zone)
        next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
        end = datetime(next_year, next_month, 1, tzinfo=self.zone)
        return BillingPeriod(f"{year:04d}-{month:02d}", start.astimezone(UTC), end.astimezone(UTC))

    def period_of(self, instant: datetime) -> BillingPeriod:
        local = instant.astimezone(self.zone)
        return self.period(local.year, local.month)

    def parse(self, label: str) -> BillingPeriod:
        """The period named ``YYYY-MM``; raises ValueError for anything else."""
        match = _LABEL.fullmatch(label)
        if match is None:
            raise ValueError(f"a billing period is written YYYY-MM, not {label!r}")
        return self.period(int(match.group(1)), int(match.group(2)))

    def following(self, period: BillingPeriod) -> BillingPeriod:
        return self.period_of(period.end)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)
