"""The records of billing that services hand to the face."""

from store.billing_tables import BalanceEntryRow, BillLineRow, BillRow, UsageRecordRow

__all__ = ["BalanceEntryRow", "BillLineRow", "BillRow", "UsageRecordRow"]
