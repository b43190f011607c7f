"""Money in the graph: an exact decimal amount and its currency."""

from __future__ import annotations

from decimal import Decimal

import strawberry

#: one scale for every amount of money, as stored (NUMERIC(20, 6)): usage is metered to the millionth,
#: so totals keep 6 places too and always equal the sum of their lines
MONEY_SCALE = Decimal("0.000001")
#: standard compute unit-hours and other quantities: 9 places (a CPU core for one second is 0.000000889)
QUANTITY_SCALE = Decimal("0.000000001")


@strawberry.type(description="An amount of money in one currency; amounts are exact decimals.")
class Money:
    amount: Decimal = strawberry.field(description="Exact, at 6 decimal places (the millionth the gateway meters to).")
    currency: str = strawberry.field(description="ISO 4217 code.")

    def __post_init__(self) -> None:
        self.amount = self.amount.quantize(MONEY_SCALE)
