"""Who is asking: the account every read and write is scoped to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Viewer:
    account_id: int
    is_admin: bool = False

    @property
    def scope(self) -> int | None:
        """The owner filter for queries: None (everything) for admins."""
        return None if self.is_admin else self.account_id
