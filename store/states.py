"""The job vocabulary: states, event kinds and job kinds, one definition for every layer.

The values are the strings the database holds (and the GraphQL enums' names), so a
member compares equal to its stored string and the tables need no migration. The
services re-export these for the graph (resolvers/jobs/states.py); a center's own
vocabulary (connectors.base.CenterJobState) stays apart and the ledger maps it.
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


class JobEventKind(enum.StrEnum):
    STATE = "STATE"
    PROGRESS = "PROGRESS"
    LOG = "LOG"
    PLACEMENT = "PLACEMENT"
    USAGE = "USAGE"
    #: an input being copied into the job's AICN_INPUT_DIR before it starts (bytes done of total)
    STAGING = "STAGING"


class JobKind(enum.StrEnum):
    TRAINING = "TRAINING"
    INFERENCE = "INFERENCE"
    BATCH = "BATCH"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
#: states in which a job holds (or is about to hold) devices at its center
HOLDING_STATES = (JobState.QUEUED, JobState.STARTING, JobState.RUNNING, JobState.CANCELLING)
#: a job not yet handed to a center (a crash during hand-over is finished from these)
UNSUBMITTED_STATES = (JobState.PENDING, JobState.QUEUED)
