"""Metering tokens: a priced OPENAI service's counted tokens go on its owner's bill.

The tokens a service's servers report are added to its totals (and, when it is priced, to its
``tokens_unbilled``) as the request counts are flushed. At most every ``token_billing_seconds``,
and once more when the service has ended, the unbilled tokens become one TOKENS bill line naming
the service, in the transaction that sets ``tokens_unbilled`` back to 0: a token is billed once.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from resolvers.billing.bills import BillBook, Notice
from resolvers.common.ids import to_global_id
from resolvers.services.states import ENDED_STATES
from store import services as service_store
from store.bus import InMemoryBus
from store.db import Database
from store.types import utcnow

MILLION = Decimal(1_000_000)
CENT_MILLIONTHS = Decimal("0.000001")


def token_charge(tokens: int, price_per_million: Decimal) -> Decimal:
    return (Decimal(tokens) * price_per_million / MILLION).quantize(CENT_MILLIONTHS, rounding=ROUND_HALF_UP)


class TokenMeter:
    def __init__(self, db: Database, bus: InMemoryBus, book: BillBook, interval_seconds: float) -> None:
        self.db = db
        self.bus = bus
        self.book = book
        self.interval = timedelta(seconds=interval_seconds)

    async def bill_due(self) -> bool:
        """Bill the tokens of every service that ended or was last billed an interval ago; whether any was due."""
        async with self.db.read() as session:
            due = await service_store.tokens_to_bill(session, ENDED_STATES, utcnow() - self.interval)
        for service_id in due:
            await self.bill(service_id)
        return bool(due)

    async def bill(self, service_id: int) -> None:
        notices: list[Notice] = []
        async with self.db.transaction() as session:
            service = await service_store.lock_service(session, service_id)
            if service is None or service.tokens_unbilled <= 0:
                return
            tokens, price = service.tokens_unbilled, service.price_per_million_tokens
            now = utcnow()
            service.tokens_unbilled = 0
            service.tokens_billed_at = now
            if price is None or price <= 0:
                return
            account = await self.book.lock(session, service.owner_id)
            bill = await self.book.open_bill(session, service.owner_id, self.book.policy.calendar.period_of(now))
            currency = self.book.policy.currency
            amount = token_charge(tokens, price)
            description = (
                f"{service.name} (service {to_global_id('InferenceService', service.id)}): "
                f"{tokens} tokens x {price} {currency} per million tokens"
            )
            _, notices = await self.book.post(
                session, account, bill, kind="TOKENS", amount=amount, description=description, service_id=service.id, tokens=tokens
            )
        for channel, message in notices:
            await self.bus.publish(channel, message)
