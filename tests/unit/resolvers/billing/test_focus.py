"""The FOCUS cost export: one CSV row per bill line, usage lines naming the job, its center and
the SKU, adjustments naming no resource; the file is streamed a keyset page at a time."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.billing import focus
from resolvers.billing.focus import COLUMNS, focus_csv, focus_row
from resolvers.common.ids import from_global_id
from store.billing import ExportLine
from store.billing_tables import BillLineRow, BillRow, UsageRecordRow
from store.tables import CenterRow, JobRow

SHANGHAI = timezone(timedelta(hours=8))
BILL = BillRow(
    id=5,
    account_id=42,
    period="2026-03",
    currency="CNY",
    period_start=datetime(2026, 3, 1, tzinfo=SHANGHAI),
    period_end=datetime(2026, 4, 1, tzinfo=SHANGHAI),
)
CENTER = CenterRow(id=3, name="wuhan", display_name="Wuhan AI Center", region="cn-central")


def usage_line(line_id: int = 1, *, center: CenterRow | None = CENTER, job: JobRow | None = None, description: str = "job") -> ExportLine:
    usage = UsageRecordRow(
        id=line_id,
        job_id=77,
        center_id=3,
        started_at=datetime(2026, 3, 2, 9, 0, 0, 900_000, tzinfo=UTC),
        ended_at=datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
        accelerator="nvidia-a100-80gb",
        standard_unit_hours=Decimal("4.680000000"),
        unit_price=Decimal("2.000000"),
        amount=Decimal("9.360000"),
    )
    line = BillLineRow(id=line_id, bill_id=5, kind="USAGE", usage_id=line_id, description=description, amount=Decimal("9.360000"))
    return ExportLine(line=line, usage=usage, job=job if job is not None else JobRow(id=77, name="train-llm"), center=center)


def adjustment_line(line_id: int = 2, amount: str = "-1.500000") -> ExportLine:
    line = BillLineRow(id=line_id, bill_id=5, kind="ADJUSTMENT", description="goodwill credit", amount=Decimal(amount))
    return ExportLine(line=line, usage=None, job=None, center=None)


def as_dict(row: list[str]) -> dict[str, str]:
    assert len(row) == len(COLUMNS)
    return dict(zip(COLUMNS, row, strict=True))


def test_a_usage_line_names_its_job_center_sku_and_quantity() -> None:
    row = as_dict(focus_row(BILL, usage_line()))
    assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == "9.360000"
    assert row["BillingCurrency"] == "CNY" and row["ChargeCategory"] == "Usage" and row["ServiceName"] == "AI Compute"
    # times in UTC, to the second
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == ("2026-02-28T16:00:00Z", "2026-03-31T16:00:00Z")
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == ("2026-03-02T09:00:00Z", "2026-03-02T10:30:00Z")
    assert row["ConsumedQuantity"] == row["PricingQuantity"] == "4.680000000"
    assert row["ConsumedUnit"] == row["PricingUnit"] == "Standard Compute Unit-Hours" and row["ListUnitPrice"] == "2.000000"
    assert from_global_id(row["ResourceId"]) == ("Job", "77") and row["ResourceName"] == "train-llm"
    assert (row["ProviderName"], row["RegionId"], row["SkuId"]) == ("Wuhan AI Center", "cn-central", "wuhan/nvidia-a100-80gb")
    assert from_global_id(row["BillingAccountId"]) == ("Account", "42") and row["SubAccountId"] == row["BillingAccountId"]


def test_a_usage_line_whose_center_and_job_are_unknown_still_has_a_sku() -> None:
    row = as_dict(focus_row(BILL, ExportLine(line=usage_line().line, usage=usage_line().usage, job=None, center=None)))
    assert (row["ProviderName"], row["RegionId"], row["ResourceName"]) == ("", "", "")
    assert row["SkuId"] == "3/nvidia-a100-80gb"
    no_region = as_dict(focus_row(BILL, usage_line(center=CenterRow(id=3, name="x", display_name="X", region=None))))
    assert no_region["RegionId"] == ""


def test_an_adjustment_covers_the_billing_period_and_names_no_resource() -> None:
    row = as_dict(focus_row(BILL, adjustment_line()))
    assert row["ChargeCategory"] == "Adjustment" and row["BilledCost"] == "-1.500000" and row["ProviderName"] == "aicn"
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == (row["BillingPeriodStart"], row["BillingPeriodEnd"])
    for column in ("ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "ListUnitPrice", "ResourceId", "ResourceName", "SkuId"):
        assert row[column] == "", column


class PagedStore:
    """Stands in for the database: bill lines by keyset page, and the pages asked for."""

    def __init__(self, lines: list[ExportLine]) -> None:
        self.lines = lines
        self.asked: list[tuple[int, int]] = []

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        yield None

    async def export_lines(self, _session: Any, bill_id: int, *, after: int, limit: int) -> list[ExportLine]:
        assert bill_id == BILL.id
        self.asked.append((after, limit))
        return [item for item in self.lines if item.line.id > after][:limit]


async def export(store: PagedStore, monkeypatch: pytest.MonkeyPatch, page: int) -> tuple[list[str], list[list[str]]]:
    monkeypatch.setattr(focus, "PAGE", page)
    monkeypatch.setattr(focus.billing_store, "export_lines", store.export_lines)
    chunks = [chunk async for chunk in focus_csv(store, BILL)]  # type: ignore[arg-type]
    assert all(chunk.endswith("\r\n") for chunk in chunks)
    return chunks, list(csv.reader(io.StringIO("".join(chunks), newline="")))


async def test_the_export_streams_a_header_then_each_page(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [usage_line(n, description=f'job "{n}", at 9:00\nsecond line') if n % 2 else adjustment_line(n) for n in range(1, 6)]
    store = PagedStore(lines)
    chunks, rows = await export(store, monkeypatch, page=2)
    assert len(chunks) == 1 + 3 and rows[0] == list(COLUMNS)
    assert rows[1:] == [focus_row(BILL, item) for item in lines]  # quotes, commas and newlines survive the CSV
    assert store.asked == [(0, 2), (2, 2), (4, 2)]


async def test_a_full_last_page_costs_one_more_empty_read(monkeypatch: pytest.MonkeyPatch) -> None:
    store = PagedStore([adjustment_line(n) for n in range(1, 5)])
    chunks, rows = await export(store, monkeypatch, page=2)
    assert len(rows) == 5 and len(chunks) == 3 and store.asked == [(0, 2), (2, 2), (4, 2)]
    empty = PagedStore([])
    assert (await export(empty, monkeypatch, page=2))[1] == [list(COLUMNS)]


@given(st.lists(st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=6), max_size=8))
def test_the_costs_of_the_rows_add_up_to_the_lines(amounts: list[Decimal]) -> None:
    rows = [as_dict(focus_row(BILL, adjustment_line(n, str(amount)))) for n, amount in enumerate(amounts, start=1)]
    assert sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0)) == sum(amounts, Decimal(0))
