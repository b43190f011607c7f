"""Quotas: how many standard units an account's jobs may hold at once, and what happens to a
job over it (QUEUE: it waits until the account's jobs free units; REFUSE: it is refused).

The one place a quota is set, for the graph's ``setQuota`` and the operator's ``aicn set-quota``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select

from resolvers.access.directory import AccountDirectory
from resolvers.access.viewer import Viewer
from resolvers.common.errors import UserErrorData
from store.db import Database
from store.tables import AccountRow

QUOTA_MODES = ("queue", "refuse")


@dataclass
class QuotaOutcome:
    account: AccountRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


def quota_errors(max_standard_units: float | None, mode: str | None) -> list[UserErrorData]:
    errors: list[UserErrorData] = []
    if max_standard_units is not None and not (math.isfinite(max_standard_units) and max_standard_units > 0):
        message = "maxStandardUnits must be a positive number of standard units, or null to lift the cap"
        errors.append(UserErrorData(message, "INVALID_QUOTA", ("maxStandardUnits",)))
    if mode is not None and mode not in QUOTA_MODES:
        errors.append(UserErrorData(f"mode must be one of {', '.join(QUOTA_MODES)}", "INVALID_QUOTA_MODE", ("mode",)))
    return errors


class QuotaService:
    def __init__(self, db: Database, default_mode: str, directory: AccountDirectory | None = None) -> None:
        self.db = db
        #: told of every change, so that every gateway's next request sees the new quota
        self.directory = directory or AccountDirectory(db)
        #: the ``quota_mode`` setting: the mode of an account that has none of its own
        self.default_mode = default_mode

    def mode_of(self, account: AccountRow) -> str:
        return account.quota_mode or self.default_mode

    async def set_quota(self, viewer: Viewer, account_key: int | None, max_standard_units: float | None, mode: str | None) -> QuotaOutcome:
        """Cap an account's standard units (None lifts the cap) and choose its mode (None: the
        gateway's default). Administrators only."""
        if not viewer.is_admin:
            return QuotaOutcome(errors=[UserErrorData("only an administrator may set quotas", "FORBIDDEN")])
        key = account_key if account_key is not None else -1
        return await self._set(select(AccountRow).where(AccountRow.id == key), max_standard_units, mode)

    async def set_quota_by_name(self, name: str, max_standard_units: float | None, mode: str | None = None) -> QuotaOutcome:
        """The same, for the operator's CLI (which names the account)."""
        return await self._set(select(AccountRow).where(AccountRow.name == name), max_standard_units, mode)

    async def _set(self, which: Select[Any], max_standard_units: float | None, mode: str | None) -> QuotaOutcome:
        errors = quota_errors(max_standard_units, mode)
        if errors:
            return QuotaOutcome(errors=errors)
        async with self.db.transaction() as session:
            account = await session.scalar(which)
            if account is None:
                return QuotaOutcome(errors=[UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",))])
            account.max_standard_units = max_standard_units
            account.quota_mode = mode
            await session.flush()
        await self.directory.changed(account.id)
        return QuotaOutcome(account=account)
