"""The service ledger: every change to a service is written with its events in one
transaction, then announced on the bus (``service:<id>``). Nothing else writes a service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from resolvers.services.states import ENDED_STATES, ServiceEventKind, ServiceState
from store import services as service_store
from store.bus import InMemoryBus
from store.db import Database
from store.service_tables import ServiceEventRow, ServiceRow
from store.types import utcnow


@dataclass(frozen=True)
class ServiceEventRecord:
    service_id: int
    seq: int
    at: datetime
    kind: str
    state: str | None = None
    replicas_ready: int | None = None
    message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.kind == ServiceEventKind.STATE and self.state in ENDED_STATES

    @classmethod
    def from_row(cls, row: ServiceEventRow) -> ServiceEventRecord:
        return cls(row.service_id, row.seq, row.at, row.kind, row.state, row.replicas_ready, row.message)

    def to_message(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "state": self.state,
            "replicas_ready": self.replicas_ready,
            "message": self.message,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ServiceEventRecord:
        return cls(
            service_id=int(message["service_id"]),
            seq=int(message["seq"]),
            at=datetime.fromisoformat(message["at"]),
            kind=str(message["kind"]),
            state=message.get("state"),
            replicas_ready=message.get("replicas_ready"),
            message=message.get("message"),
        )


@dataclass
class ServiceChange:
    events: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)

    def state(self, state: ServiceState, message: str | None = None, replicas_ready: int | None = None) -> None:
        self.events.append({"kind": ServiceEventKind.STATE, "state": state, "message": message, "replicas_ready": replicas_ready})
        self.columns["state"] = state

    def event(self, kind: ServiceEventKind, message: str, replicas_ready: int | None = None) -> None:
        self.events.append({"kind": kind, "message": message, "replicas_ready": replicas_ready})

    def finish_stopping(self, current: ServiceRow, message: str) -> None:
        """A STOPPING service whose last replica has gone ends: FAILED with its reason, else STOPPED."""
        if current.state != ServiceState.STOPPING:
            return
        self.columns.update(stopped_at=utcnow(), desired_replicas=0, ready_replicas=0)
        if current.failure_reason:
            self.state(ServiceState.FAILED, current.failure_reason, 0)
        else:
            self.state(ServiceState.STOPPED, message, 0)

    def __bool__(self) -> bool:
        return bool(self.events or self.columns)


class ServiceLedger:
    def __init__(self, db: Database, bus: InMemoryBus) -> None:
        self.db = db
        self.bus = bus

    async def apply(
        self, service_id: int, planner: Callable[[ServiceRow], ServiceChange]
    ) -> tuple[ServiceRow | None, list[ServiceEventRecord]]:
        """Lock the service, let ``planner`` decide, write its change and events, then announce them."""
        async with self.db.transaction() as session:
            service = await service_store.lock_service(session, service_id)
            if service is None:
                return None, []
            change = planner(service)
            if not change:
                return service, []
            for column, value in change.columns.items():
                setattr(service, column, value)
            rows = [service_store.append_event(session, service, **event) for event in change.events]
            await session.flush()
            records = [ServiceEventRecord.from_row(row) for row in rows]
        await self.announce(records)
        return service, records

    async def announce(self, records: Sequence[ServiceEventRecord]) -> None:
        for record in records:
            await self.bus.publish(f"service:{record.service_id}", record.to_message())
