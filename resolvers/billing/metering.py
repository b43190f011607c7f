"""Metering: the usage record of a job that ran, written with the job's end.

``Meter.settle`` is called by the job ledger inside the transaction that writes a job's
terminal state. A job that never started is not metered; its hold simply ends with it
(holds are the ``hold_amount`` of unfinished jobs). A job that ran gets one usage record
(the UNIQUE job_id refuses a second, whoever writes it), one bill line, and its amount
is taken from the balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.billing.bills import BillBook
from resolvers.billing.pricing import billed_seconds, cost, max_seconds, standard_unit_hours
from store import billing as billing_store
from store.tables import JobRow
from store.types import utcnow


@dataclass
class Settlement:
    """What metering a job's end wrote: the USAGE event's text (None when nothing was
    metered) and news for the bus, published once the transaction has committed."""

    usage_message: str | None = None
    notices: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Meter:
    def __init__(self, book: BillBook) -> None:
        self.book = book

    async def settle(self, session: AsyncSession, job: JobRow) -> Settlement:
        if job.started_at is None or job.unit_price is None or job.units_per_device is None or job.center_id is None:
            return Settlement()  # never ran, or submitted before billing existed
        account = await self.book.lock(session, job.owner_id)
        ended = job.finished_at or utcnow()
        accelerator, devices = job.request.allocation()
        seconds = billed_seconds(job.started_at, ended, max_seconds(job.request.max_duration_minutes))
        hours = standard_unit_hours(job.units_per_device, devices, seconds)
        amount = cost(job.units_per_device, devices, seconds, job.unit_price)
        currency = job.currency or self.book.policy.currency
        bill = await self.book.open_bill(session, job.owner_id, self.book.policy.calendar.period_of(ended))
        usage = billing_store.add_usage(
            session,
            job_id=job.id,
            account_id=job.owner_id,
            center_id=job.center_id,
            bill_id=bill.id,
            started_at=job.started_at,
            ended_at=ended,
            seconds=seconds,
            accelerator=accelerator,
            devices=devices,
            units_per_device=job.units_per_device,
            standard_unit_hours=hours,
            unit_price=job.unit_price,
            currency=currency,
            amount=amount,
            service_id=job.service_id,
        )
        job.cost = amount
        await session.flush()  # a second record for this job fails here (IntegrityError)
        description = f"{job.name}: {hours} standard unit-hours of {devices} x {accelerator} for {seconds} s"
        _, notices = await self.book.post(session, account, bill, kind="USAGE", amount=amount, description=description, usage_id=usage.id)
        message = f"{hours} standard unit-hours x {job.unit_price} {currency} = {amount} {currency}"
        return Settlement(usage_message=message, notices=notices)
