"""Settlement with a peer: per PEER center and month, what was delegated, what each side charged, where they disagree.

The origin charges its users the peer's price plus its markup, so the two sides' totals differ by
design. What must agree is the peer's charge for each job and the origin's own metering of the same
job at the peer's price (the origin's unit price less the markup): the same seconds (the origin
meters the start and end the peer reported), the same devices, the peer's price. Every job where
the peer's usage record says otherwise, or where only one side charged, is listed with a code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from resolvers.billing.periods import BillingPeriod, Calendar
from resolvers.billing.pricing import cost
from resolvers.centers.registry import Center, CenterRegistry
from store import settlement as settlement_store
from store.db import Database
from store.tables import JobRow

#: the peer charged a different amount than the origin's metering at the peer's price
AMOUNT_DIFFERS = "AMOUNT_DIFFERS"
#: the origin metered the job (it ran) but the peer has no usage record for it
NOT_CHARGED_BY_PEER = "NOT_CHARGED_BY_PEER"
#: the peer charged for a job the origin did not meter (it never saw it run)
NOT_CHARGED_HERE = "NOT_CHARGED_HERE"


@dataclass(frozen=True)
class SettlementLine:
    job: JobRow
    origin_amount: Decimal | None
    expected_peer_amount: Decimal | None
    peer_amount: Decimal | None
    reason: str

    @property
    def difference(self) -> Decimal:
        return (self.peer_amount or Decimal(0)) - (self.expected_peer_amount or Decimal(0))


@dataclass
class PeerSettlementData:
    center: Center
    period: BillingPeriod
    currency: str
    jobs_delegated: int = 0
    origin_charged: Decimal = Decimal(0)
    expected_peer_charge: Decimal = Decimal(0)
    peer_charged: Decimal = Decimal(0)
    disagreements: list[SettlementLine] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.disagreements


class NotAPeer(ValueError):
    """The center is not a PEER center: there is nothing to settle with it."""


class PeerSettlements:
    def __init__(self, db: Database, registry: CenterRegistry, calendar: Calendar) -> None:
        self.db = db
        self.registry = registry
        self.calendar = calendar

    async def settle(self, center: Center, label: str) -> PeerSettlementData:
        """Raises ValueError for a bad period, NotAPeer for another kind, CenterFault when the peer does not answer."""
        if center.kind != "PEER":
            raise NotAPeer(f"center {center.name} is a {center.kind} center, not a PEER")
        period = self.calendar.parse(label)
        async with self.db.read() as session:
            jobs = await settlement_store.delegated_jobs(session, center.id, period.start, period.end)
        external_ids = [job.external_id for job, _ in jobs if job.external_id]
        charged = await self.registry.call(center, lambda connector: connector.charges(external_ids)) if external_ids else {}
        charged = charged or {}
        result = PeerSettlementData(center, period, self.registry.currency, jobs_delegated=len(jobs))
        for job, usage in jobs:
            peer_amount = charged.get(job.external_id or "")
            origin_amount = usage.amount if usage is not None else None
            expected = None
            if usage is not None:
                peer_price = usage.unit_price - center.markup
                expected = cost(usage.units_per_device, usage.devices, usage.seconds, peer_price)
            result.origin_charged += origin_amount or Decimal(0)
            result.expected_peer_charge += expected or Decimal(0)
            result.peer_charged += peer_amount or Decimal(0)
            reason = _disagreement(expected, peer_amount)
            if reason is not None:
                result.disagreements.append(SettlementLine(job, origin_amount, expected, peer_amount, reason))
        return result


def _disagreement(expected: Decimal | None, peer_amount: Decimal | None) -> str | None:
    if expected is None and peer_amount is None:
        return None  # it never ran: neither side charged
    if peer_amount is None:
        return NOT_CHARGED_BY_PEER if expected else None  # a zero-second job may go unbilled
    if expected is None:
        return NOT_CHARGED_HERE if peer_amount else None
    return AMOUNT_DIFFERS if expected != peer_amount else None
