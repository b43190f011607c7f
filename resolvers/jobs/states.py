"""The job vocabulary, for the services and the graph (defined once, with the tables, in store.states)."""

from __future__ import annotations

from store.states import HOLDING_STATES, TERMINAL_STATES, UNSUBMITTED_STATES, JobEventKind, JobKind, JobState

__all__ = ["HOLDING_STATES", "TERMINAL_STATES", "UNSUBMITTED_STATES", "JobEventKind", "JobKind", "JobState"]
