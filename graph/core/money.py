"""Money in the graph: an exact decimal amount and its currency."""

from __future__ import annotations

from decimal import Decimal

import strawberry


@strawberry.type(description="An amount of money in one currency; amounts are exact decimals.")
class Money:
    amount: Decimal
    currency: str
