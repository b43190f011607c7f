"""The jobs' enums in the graph."""

from __future__ import annotations

import enum

import strawberry

from resolvers.jobs import states

# the services' own enums, made GraphQL enums in place: rows and events carry these members as they are
JobKind = states.JobKind
JobState = states.JobState
JobEventKind = states.JobEventKind
strawberry.enum(JobKind)
strawberry.enum(JobState)
strawberry.enum(JobEventKind)


@strawberry.enum
class PlacementPolicy(enum.Enum):
    CHEAPEST = "CHEAPEST"
    EARLIEST_START = "EARLIEST_START"
    DATA_LOCAL = "DATA_LOCAL"
