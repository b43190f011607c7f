"""Offers: what each center would charge for a resource request, and whether it can start now.

Pure functions over what the centers reported (their compute units) and what the gateway
knows (jobs running there, the account's quota). Placement ranks these offers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from connectors.base import CenterQuote, QuoteRequest
from connectors.catalog import CPU_CORE, Catalog
from resolvers.centers.registry import Center, ComputeUnitInfo
from resolvers.common.errors import CenterFault
from resolvers.jobs.resources import ResourceRequest

#: money is exact; quotes keep six places so that cheap devices do not round to zero
QUANTUM = Decimal("0.000001")


def devices_of(need: ResourceRequest, catalog: Catalog, model: str) -> int:
    """How many devices of ``model`` meet ``need`` (a request as the user gave it)."""
    if need.devices is not None:
        return need.devices
    entry = catalog.get(model)
    if need.standard_units is not None and entry is not None and entry.standard_units > 0:
        return max(1, math.ceil(need.standard_units / entry.standard_units - 1e-9))
    if need.cpus is not None and model == CPU_CORE:
        return need.cpus
    return 1


def quote_request(need: ResourceRequest, policy: str) -> QuoteRequest:
    """A request as a center that prices requests itself is asked it."""
    return QuoteRequest(
        max_duration_minutes=float(need.max_duration_minutes),
        accelerator=need.accelerator,
        devices=need.devices,
        standard_units=need.standard_units,
        cpus=need.cpus,
        memory_gb=need.memory_gb,
        policy=policy,
    )


def candidate_models(need: ResourceRequest) -> tuple[str, ...] | None:
    """The models that may serve ``need``; None means any model the center has."""
    if need.accelerator is not None:
        return (need.accelerator,)
    if need.standard_units is None and (need.cpus is not None or need.devices is not None):
        return (CPU_CORE,)
    return None


@dataclass(frozen=True)
class BusyDevices:
    """Devices a running job holds at a center, and when its time limit frees them."""

    center_id: int
    accelerator: str
    devices: int
    ends_at: datetime


@dataclass(frozen=True)
class OfferData:
    center: Center
    unit: ComputeUnitInfo | None
    feasible: bool
    reason: str | None
    devices: int = 0
    standard_units: float = 0.0
    price_per_hour: Decimal | None = None
    max_cost: Decimal | None = None
    estimated_start: datetime | None = None

    @property
    def could_run(self) -> bool:
        """True when the center has the hardware, even if not free now."""
        return self.unit is not None and self.price_per_hour is not None and self.reason_code != "OVER_QUOTA"

    @property
    def reason_code(self) -> str | None:
        return None if self.reason is None else self.reason.split(":", 1)[0]


def money(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM, ROUND_HALF_UP)


def make_offer(
    center: Center,
    units: Sequence[ComputeUnitInfo] | CenterFault,
    need: ResourceRequest,
    catalog: Catalog,
    busy: Sequence[BusyDevices],
    now: datetime,
    quota_left: float | None = None,
    quote: CenterQuote | None = None,
) -> OfferData:
    """The center's offer; ``quote`` is the center's own (a PEER's), whose reason and estimated start it keeps."""
    left_out = need.admits_center(center.id)
    if left_out is not None:
        return OfferData(center, None, False, left_out)
    if isinstance(units, CenterFault):
        return OfferData(center, None, False, f"CENTER_DOWN: {units.message}")
    if quote is not None and quote.price_per_unit_hour is None:
        return OfferData(center, None, False, quote.reason or "NO_SUCH_DEVICE: the center cannot run this request")
    offer = _own_offer(center, units, need, catalog, busy, now, quota_left)
    if quote is not None and offer.unit is not None and not quote.feasible and offer.reason_code != "OVER_QUOTA":
        # the center knows its own queue: its reason and its estimate of the start, not ours
        return replace(offer, feasible=False, reason=quote.reason, estimated_start=quote.estimated_start)
    return offer


def _own_offer(
    center: Center,
    units: Sequence[ComputeUnitInfo],
    need: ResourceRequest,
    catalog: Catalog,
    busy: Sequence[BusyDevices],
    now: datetime,
    quota_left: float | None,
) -> OfferData:
    if center.max_duration_minutes is not None and need.max_duration_minutes > center.max_duration_minutes:
        return OfferData(
            center, None, False, f"DURATION_OVER_LIMIT: this center runs jobs for at most {center.max_duration_minutes:g} minutes"
        )
    models = candidate_models(need)
    options = [unit for unit in units if models is None or unit.accelerator.model in models]
    if not options:
        wanted = ", ".join(models) if models else "any accelerator"
        return OfferData(center, None, False, f"NO_SUCH_DEVICE: this center has no {wanted}")
    best: OfferData | None = None
    for unit in options:
        offer = _offer_on(center, unit, need, catalog, busy, now, quota_left)
        if best is None or _better(offer, best):
            best = offer
    assert best is not None
    return best


def _offer_on(
    center: Center,
    unit: ComputeUnitInfo,
    need: ResourceRequest,
    catalog: Catalog,
    busy: Sequence[BusyDevices],
    now: datetime,
    quota_left: float | None,
) -> OfferData:
    model = unit.accelerator.model
    devices = devices_of(need, catalog, model)
    units = round(devices * unit.accelerator.standard_units, 6)
    price = money(unit.price_per_unit_hour * Decimal(str(units)))
    max_cost = money(unit.price_per_unit_hour * Decimal(str(units)) * Decimal(str(need.max_duration_minutes)) / Decimal(60))
    priced = OfferData(
        center, unit, True, None, devices=devices, standard_units=units, price_per_hour=price, max_cost=max_cost, estimated_start=now
    )
    if devices > unit.devices_total:
        reason = f"NOT_ENOUGH_DEVICES: needs {devices} {model}; the center has {unit.devices_total}"
        return OfferData(center, None, False, reason, devices=devices, standard_units=units)
    cap = need.max_price_per_hour
    if cap is not None and price > cap:
        reason = f"OVER_PRICE_CAP: {price} per hour for {devices} x {model} is above the request's maxPricePerHour {cap}"
        return OfferData(center, None, False, reason, devices=devices, standard_units=units, price_per_hour=price, max_cost=max_cost)
    if quota_left is not None and units > quota_left + 1e-9:
        reason = f"OVER_QUOTA: needs {units:g} standard units; the account may use {max(quota_left, 0):g} more"
        return replace(priced, feasible=False, reason=reason, estimated_start=None)
    if devices <= unit.devices_available:
        return priced
    start = _estimated_start(center.id, model, devices - unit.devices_available, busy, now)
    reason = f"NOT_ENOUGH_FREE: needs {devices} {model}; {unit.devices_available} free now"
    return replace(priced, feasible=False, reason=reason, estimated_start=start)


def _estimated_start(center_id: int, model: str, missing: int, busy: Sequence[BusyDevices], now: datetime) -> datetime | None:
    """When running jobs' time limits free ``missing`` more devices; None if they never do."""
    freed = 0
    for holder in sorted((b for b in busy if b.center_id == center_id and b.accelerator == model), key=lambda b: b.ends_at):
        freed += holder.devices
        if freed >= missing:
            return max(now, holder.ends_at) + timedelta(seconds=1)
    return None


def _better(offer: OfferData, than: OfferData) -> bool:
    """Within one center: startable beats not, then cheaper, then sooner."""
    if offer.feasible != than.feasible:
        return offer.feasible
    if (offer.price_per_hour is None) != (than.price_per_hour is None):
        return offer.price_per_hour is not None
    if offer.price_per_hour is not None and than.price_per_hour is not None and offer.price_per_hour != than.price_per_hour:
        return offer.price_per_hour < than.price_per_hour
    return False
