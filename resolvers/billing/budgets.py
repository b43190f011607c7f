"""Budget alerts: which thresholds a month's spending crossed, and the live stream of them.

A threshold is recorded (``store.budgets``) in the transaction that crossed it, so each
is announced once per month even across restarts; the bus carries the news, and a
subscriber that reconnects with ``after`` reads what it missed from the table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from resolvers.access.viewer import Viewer
from store import budgets as budget_store
from store.billing_tables import BudgetAlertRow
from store.bus import InMemoryBus
from store.db import Database

THRESHOLDS = (50, 80, 100)
#: the threshold a LOW_BALANCE alert is recorded under: told once a month, like each budget threshold
LOW_BALANCE_THRESHOLD = 0
CHANNEL = "budget-alerts"
REPLAY_BATCH = 500


def thresholds_crossed(spent: Decimal, budget: Decimal | None, already: Iterable[int]) -> list[int]:
    """Thresholds (percent) that ``spent`` has reached and that were not announced yet."""
    if budget is None or budget <= 0:
        return []
    done = set(already)
    return [threshold for threshold in THRESHOLDS if threshold not in done and spent * 100 >= budget * threshold]


@dataclass(frozen=True)
class AlertRecord:
    id: int
    account_id: int
    period: str
    threshold: int
    budget: Decimal
    spent: Decimal
    currency: str
    at: datetime
    kind: str = "BUDGET"

    @classmethod
    def from_row(cls, row: BudgetAlertRow) -> AlertRecord:
        return cls(row.id, row.account_id, row.period, row.threshold, row.budget, row.spent, row.currency, row.created_at, row.kind)

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "period": self.period,
            "threshold": self.threshold,
            "budget": str(self.budget),
            "spent": str(self.spent),
            "currency": self.currency,
            "at": self.at.isoformat(),
            "kind": self.kind,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> AlertRecord:
        return cls(
            id=int(message["id"]),
            account_id=int(message["account_id"]),
            period=str(message["period"]),
            threshold=int(message["threshold"]),
            budget=Decimal(message["budget"]),
            spent=Decimal(message["spent"]),
            currency=str(message["currency"]),
            at=datetime.fromisoformat(message["at"]),
            kind=str(message.get("kind", "BUDGET")),
        )


class BudgetAlertStream:
    def __init__(self, db: Database, bus: InMemoryBus) -> None:
        self.db = db
        self.bus = bus

    async def _read_after(self, scope: int | None, after: int) -> list[AlertRecord]:
        async with self.db.read() as session:
            rows = await budget_store.alerts_after(session, scope, after, REPLAY_BATCH)
        return [AlertRecord.from_row(row) for row in rows]

    async def alerts(self, viewer: Viewer, after: int | None) -> AsyncIterator[AlertRecord]:
        """The caller's alerts: those after ``after`` from the table (when given), then live."""
        scope = viewer.scope
        async with self.bus.subscribe(CHANNEL) as live:
            last = 0
            if after is not None:
                last = max(0, after)
                while True:
                    batch = await self._read_after(scope, last)
                    for record in batch:
                        yield record
                        last = record.id
                    if len(batch) < REPLAY_BATCH:
                        break
            while True:
                message = await live.get()
                if message is None:
                    continue
                record = AlertRecord.from_message(message)
                if (scope is not None and record.account_id != scope) or record.id <= last:
                    continue
                last = record.id
                yield record
