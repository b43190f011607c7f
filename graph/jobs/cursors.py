"""Cursors of sorted job lists: the id for NEWEST and OLDEST (the plain cursor every list
uses), the cost and the id for COST. A cursor of one order is refused by another."""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal, InvalidOperation

from resolvers.billing.pricing import MONEY_PLACES
from resolvers.common.errors import BadRequest
from resolvers.common.ids import decode_cursor, encode_cursor, parse_key
from resolvers.jobs.records import JobCursor, JobOrder

_COST = "cost"
MAX_COST = Decimal("1e14")


def encode_job_cursor(order: JobOrder, job_id: int, cost: Decimal) -> str:
    if order != JobOrder.COST:
        return encode_cursor(job_id)
    return base64.urlsafe_b64encode(f"{_COST}:{cost}:{job_id}".encode()).decode().rstrip("=")


def decode_job_cursor(cursor: str | None, order: JobOrder) -> JobCursor | None:
    if cursor is None:
        return None
    if order != JobOrder.COST:
        return JobCursor(id=decode_cursor(cursor) or 0)
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        prefix, amount, key = text.split(":")
        cost = Decimal(amount)
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidOperation):
        raise BadRequest("the cursor is not valid for orderBy: COST") from None
    job_id = parse_key(key)
    # a cursor is opaque but not trusted: a cost the gateway could not have written is refused here
    if prefix != _COST or job_id is None or not cost.is_finite() or abs(cost) >= MAX_COST or cost != cost.quantize(MONEY_PLACES):
        raise BadRequest("the cursor is not valid for orderBy: COST")
    return JobCursor(id=job_id, cost=cost)
