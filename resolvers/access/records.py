"""The records of accounts, tokens, members and audit entries that services hand to the face."""

from store.auth_tables import AccountMemberRow, ApiTokenRow, AuditEntryRow
from store.tables import AccountRow

__all__ = ["AccountMemberRow", "AccountRow", "ApiTokenRow", "AuditEntryRow"]
