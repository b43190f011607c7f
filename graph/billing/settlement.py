"""Settlement with peers: per PEER center and month, both sides' charges and every job where they disagree."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter
from graph.core.context import Context
from graph.core.errors import center_error
from graph.core.money import Money
from graph.core.permissions import REQUIRES
from resolvers.access.viewer import ADMIN
from resolvers.billing.settlement import NotAPeer, PeerSettlementData, SettlementLine
from resolvers.common.errors import BadRequest, CenterFault
from resolvers.common.ids import int_key

if TYPE_CHECKING:
    from graph.jobs.types import Job


@strawberry.type(description="One delegated job where the peer's charge and the origin's metering at the peer's price differ.")
class PeerSettlementLine:
    remote_id: str | None = strawberry.field(description="The job's id at the peer.")
    origin_amount: Money | None = strawberry.field(description="What this gateway charged its user (the peer's price plus markup).")
    expected_peer_amount: Money | None = strawberry.field(description="This gateway's metering of the job at the peer's price.")
    peer_amount: Money | None = strawberry.field(description="What the peer's usage record charged this gateway's account.")
    difference: Money = strawberry.field(description="peerAmount - expectedPeerAmount (a missing side counts 0).")
    reason: str = strawberry.field(description="AMOUNT_DIFFERS, NOT_CHARGED_BY_PEER or NOT_CHARGED_HERE.")
    line: strawberry.Private[SettlementLine]

    @strawberry.field(description="The job at this gateway.")
    def job(self) -> Annotated[Job, strawberry.lazy("graph.jobs.types")]:
        from graph.jobs.types import Job

        return Job.from_row(self.line.job)


@strawberry.type(description="A month of jobs delegated to one PEER center: what each side charged, and where they disagree.")
class PeerSettlement:
    center: ComputeCenter
    period: str = strawberry.field(description="YYYY-MM, in the gateway's billing time zone; jobs that ended in it.")
    period_start: datetime
    period_end: datetime
    jobs_delegated: int = strawberry.field(description="Jobs handed to the peer that ended in the period.")
    origin_charged: Money = strawberry.field(description="What this gateway charged its users for them.")
    expected_peer_charge: Money = strawberry.field(description="This gateway's metering of them at the peer's price (without markup).")
    peer_charged: Money = strawberry.field(description="What the peer charged this gateway's account, read from its usage records.")
    margin: Money = strawberry.field(description="originCharged - peerCharged: what this gateway kept.")
    agrees: bool = strawberry.field(description="True when no job disagrees.")
    disagreements: list[PeerSettlementLine]

    @classmethod
    def from_data(cls, data: PeerSettlementData) -> PeerSettlement:
        currency = data.currency

        def money(amount: object) -> Money:
            return Money(amount=amount, currency=currency)  # type: ignore[arg-type]

        def maybe(amount: object) -> Money | None:
            return money(amount) if amount is not None else None

        return cls(
            center=ComputeCenter.from_center(data.center),
            period=data.period.label,
            period_start=data.period.start,
            period_end=data.period.end,
            jobs_delegated=data.jobs_delegated,
            origin_charged=money(data.origin_charged),
            expected_peer_charge=money(data.expected_peer_charge),
            peer_charged=money(data.peer_charged),
            margin=money(data.origin_charged - data.peer_charged),
            agrees=data.agrees,
            disagreements=[
                PeerSettlementLine(
                    remote_id=line.job.external_id,
                    origin_amount=maybe(line.origin_amount),
                    expected_peer_amount=maybe(line.expected_peer_amount),
                    peer_amount=maybe(line.peer_amount),
                    difference=money(line.difference),
                    reason=line.reason,
                    line=line,
                )
                for line in data.disagreements
            ],
        )


@strawberry.type
class SettlementQuery:
    @strawberry.field(
        description="A month's settlement with one PEER center (admins only): null, with an error naming the center, when it does not answer.",
        metadata={REQUIRES: ADMIN},
    )
    async def peer_settlement(self, info: Info[Context, None], center_id: strawberry.ID, period: str) -> PeerSettlement | None:
        if not info.context.viewer.is_admin:
            raise BadRequest("this needs the admin scope", "FORBIDDEN")
        key = int_key(center_id, "ComputeCenter")
        center = info.context.services.centers.get(key) if key is not None else None
        if center is None:
            raise BadRequest("no such center", "CENTER_NOT_FOUND")
        try:
            data = await info.context.services.settlements.settle(center, period)
        except NotAPeer as error:
            raise BadRequest(str(error), "NOT_A_PEER") from None
        except ValueError as error:
            raise BadRequest(str(error), "INVALID_PERIOD") from None
        except CenterFault as fault:
            info.context.partial_errors.append(center_error(fault, list(info.path.as_list())))
            return None
        return PeerSettlement.from_data(data)
