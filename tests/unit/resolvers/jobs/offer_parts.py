"""Centers, compute units and offers made by hand, for the offer and ranking tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from connectors.catalog import DEFAULT_CATALOG
from connectors.fault import FaultyConnector
from resolvers.centers.registry import Center, ComputeUnitInfo
from resolvers.jobs.offers import BusyDevices, OfferData, make_offer
from resolvers.jobs.resources import ResourceRequest

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def center(center_id: int = 1, max_duration_minutes: float | None = None) -> Center:
    name = f"c{center_id}"
    return Center(
        center_id, name, "LOCAL", f"Center {name}", "test", FaultyConnector(name), [], 5.0, 0.05, max_duration_minutes=max_duration_minutes
    )


def unit(where: Center, model: str = "cpu-core", total: int = 4, free: int | None = None, price: str = "0.50") -> ComputeUnitInfo:
    accelerator = DEFAULT_CATALOG.get(model)
    assert accelerator is not None, model
    return ComputeUnitInfo(where, accelerator, None, total, total if free is None else free, Decimal(price))


def busy(where: Center, devices: int, ends_in_minutes: float, model: str = "cpu-core") -> BusyDevices:
    return BusyDevices(where.id, model, devices, NOW + timedelta(minutes=ends_in_minutes))


def offer_at(center_id: int, price: str, *, free: int = 4, devices: int = 1, busy_minutes: float | None = None) -> OfferData:
    """An offer of ``center_id`` for ``devices`` cpu-cores; busy ones free up after ``busy_minutes``."""
    where = center(center_id)
    holders = [busy(where, 4, busy_minutes)] if busy_minutes is not None else []
    return make_offer(where, [unit(where, free=free, price=price)], ResourceRequest(60, devices=devices), DEFAULT_CATALOG, holders, NOW)
