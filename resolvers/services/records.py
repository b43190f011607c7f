"""The records of services the face reads (rows, read-only outside the service ledger)."""

from store.service_tables import ServiceEventRow, ServiceRow
from store.services import ServiceQuery

__all__ = ["ServiceEventRow", "ServiceQuery", "ServiceRow"]
