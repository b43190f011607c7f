"""``[replicas]``: several gateways over one database and one Redis (README "Running several gateways")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ReplicaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: this replica's name in the lease table and in /readyz (default: the host's name)
    name: str | None = Field(default=None, max_length=100)
    #: how long a lease lasts without a heartbeat: a SIGKILLed holder's loops move after at most this + heartbeat_seconds
    lease_seconds: float = Field(default=6.0, gt=0)
    #: how often each replica renews its leases and looks for leases nobody holds
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    #: take at once the leases of a holder on this same machine whose process is gone (a restart after a crash)
    reclaim_dead_local_holders: bool = True

    @model_validator(mode="after")
    def _beats_in_time(self) -> ReplicaSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError("replicas.heartbeat_seconds must be at most half of replicas.lease_seconds")
        return self
