"""The services' vocabulary: states, event kinds and protocols."""

from __future__ import annotations

import enum


class ServiceState(enum.StrEnum):
    DEPLOYING = "DEPLOYING"
    READY = "READY"
    DEGRADED = "DEGRADED"
    SCALING = "SCALING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class ServiceEventKind(enum.StrEnum):
    STATE = "STATE"
    PLACEMENT = "PLACEMENT"
    SCALE = "SCALE"
    REPLICA = "REPLICA"
    ARTIFACT = "ARTIFACT"


class ServiceProtocol(enum.StrEnum):
    INVOKE = "INVOKE"
    OPENAI = "OPENAI"


ENDED_STATES = frozenset({ServiceState.STOPPED, ServiceState.FAILED})
#: a request may be sent in these states (with none ready, it waits for a bounded cold start)
SERVING_STATES = frozenset({ServiceState.READY, ServiceState.SCALING, ServiceState.DEGRADED})
