"""The records of jobs that services hand to the face."""

from store.jobs import JobCursor, JobOrder, JobQuery
from store.tables import JobRow

__all__ = ["JobCursor", "JobOrder", "JobQuery", "JobRow"]
