"""Rows the store's unit tests write."""

from __future__ import annotations

from typing import Any

from store.resources import ResourceRequest
from store.states import JobKind, JobState
from store.tables import JobRow


def pending_job(owner_id: int, reference: str, **columns: Any) -> JobRow:
    """A new batch job, named after its reference, waiting to be placed (not written)."""
    defaults: dict[str, Any] = {
        "name": reference,
        "kind": JobKind.BATCH,
        "state": JobState.PENDING,
        "request": ResourceRequest(max_duration_minutes=1),
        "command": ["true"],
    }
    return JobRow(owner_id=owner_id, reference=reference, **{**defaults, **columns})
