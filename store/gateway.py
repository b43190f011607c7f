"""This gateway's stable id: made once, on its first start, and kept with its data.

Peers know each other by it: a job's path of gateways, and a call's, is a list of these ids.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import UtcDateTime, utcnow


class GatewayIdentityRow(Base):
    __tablename__ = "gateway_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


async def ensure_gateway_id(session: AsyncSession) -> str:
    row = await session.scalar(select(GatewayIdentityRow).where(GatewayIdentityRow.id == 1))
    if row is None:
        row = GatewayIdentityRow(id=1, gateway_id=f"gw-{uuid.uuid4().hex}")
        session.add(row)
        await session.flush()
    return row.gateway_id
