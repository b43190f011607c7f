"""API tokens: stored by the SHA-256 of their secret, never the secret itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.auth_tables import ApiTokenRow


async def add_token(
    session: AsyncSession,
    *,
    account_id: int,
    name: str,
    prefix: str,
    token_hash: str,
    scopes: Sequence[str],
    expires_at: datetime | None = None,
) -> ApiTokenRow:
    row = ApiTokenRow(
        account_id=account_id, name=name, prefix=prefix, token_hash=token_hash, scopes=",".join(scopes), expires_at=expires_at
    )
    session.add(row)
    await session.flush()
    return row


async def token_by_hash(session: AsyncSession, token_hash: str) -> ApiTokenRow | None:
    return await session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))


async def token_by_id(session: AsyncSession, token_id: int) -> ApiTokenRow | None:
    return await session.get(ApiTokenRow, token_id, populate_existing=True)


async def tokens_by_accounts(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, list[ApiTokenRow]]:
    grouped: dict[int, list[ApiTokenRow]] = {account_id: [] for account_id in account_ids}
    rows = await session.scalars(select(ApiTokenRow).where(ApiTokenRow.account_id.in_(account_ids)).order_by(ApiTokenRow.id))
    for row in rows:
        grouped[row.account_id].append(row)
    return grouped


async def count_tokens(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiTokenRow)) or 0)
