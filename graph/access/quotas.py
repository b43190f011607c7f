"""An account's quota in the graph, and the mutation that sets it (administrators)."""

from __future__ import annotations

import enum

import strawberry

from resolvers.access.quotas import QuotaService
from resolvers.access.records import AccountRow


@strawberry.enum(description="What happens to a job that would take the account over its quota.")
class QuotaMode(enum.Enum):
    QUEUE = strawberry.enum_value("QUEUE", description="It waits in the network queue until the account's jobs free units.")
    REFUSE = strawberry.enum_value("REFUSE", description="It is refused at submission (QUOTA_EXCEEDED).")


@strawberry.type(description="How many standard units an account's jobs may hold at once, and what happens to one over it.")
class Quota:
    max_standard_units: float
    mode: QuotaMode = strawberry.field(description="The account's own, or the gateway's `quota_mode` when it has none.")

    @classmethod
    def of(cls, account: AccountRow, quotas: QuotaService) -> Quota | None:
        if account.max_standard_units is None:
            return None
        return cls(max_standard_units=account.max_standard_units, mode=QuotaMode[quotas.mode_of(account).upper()])
