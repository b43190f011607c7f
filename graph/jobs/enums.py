"""The jobs' enums in the graph."""

from __future__ import annotations

import enum

import strawberry


@strawberry.enum
class JobKind(enum.Enum):
    TRAINING = "TRAINING"
    INFERENCE = "INFERENCE"
    BATCH = "BATCH"


@strawberry.enum
class JobState(enum.Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"


@strawberry.enum
class JobEventKind(enum.Enum):
    STATE = "STATE"
    PROGRESS = "PROGRESS"
    LOG = "LOG"
    PLACEMENT = "PLACEMENT"
    USAGE = "USAGE"


@strawberry.enum
class PlacementPolicy(enum.Enum):
    CHEAPEST = "CHEAPEST"
    EARLIEST_START = "EARLIEST_START"
    DATA_LOCAL = "DATA_LOCAL"
