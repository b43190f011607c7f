"""The records of jobs that services hand to the face (rows, read-only outside the ledger)."""

from store.jobs import JobQuery
from store.tables import JobRow

__all__ = ["JobQuery", "JobRow"]
