"""The records of billing that services hand to the face."""

from store.billing_tables import BillLineRow, BillRow, UsageRecordRow

__all__ = ["BillLineRow", "BillRow", "UsageRecordRow"]
