"""The storage quota: the bytes of verified and in-flight copies an account may keep."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.common.errors import UserErrorData
from store import accounts as account_store
from store import transfers as transfer_store


async def storage_refusal(session: AsyncSession, owner_id: int, more_bytes: int) -> UserErrorData | None:
    """STORAGE_QUOTA_EXCEEDED when keeping ``more_bytes`` more would take the account over its storage quota."""
    account = (await account_store.accounts_by_ids(session, [owner_id]))[owner_id]
    if account.max_storage_bytes is None:
        return None
    stored = (await transfer_store.stored_bytes(session, [owner_id]))[owner_id]
    if stored + more_bytes > account.max_storage_bytes:
        message = f"the account keeps {stored} bytes of {account.max_storage_bytes} allowed; this needs {more_bytes} more"
        return UserErrorData(message, "STORAGE_QUOTA_EXCEEDED", ("datasetId",))
    return None
