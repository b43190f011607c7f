"""The inference services' tables: a service and its event log.

A service's replicas are jobs (``jobs.service_id``): each is handed to the service's center,
reconciled, held for and metered exactly like any job, so a replica's time is billed once,
with its end, by the job ledger.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.billing_tables import MONEY
from store.resources import ResourceRequest
from store.tables import Base
from store.types import BigId, Document, RequestDocument, UtcDateTime, utcnow


class ServiceRow(Base):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_services_owner_idempotency_key"),
        Index("ix_services_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    center_id: Mapped[int | None] = mapped_column(ForeignKey("centers.id"))
    protocol: Mapped[str] = mapped_column(String(20), default="INVOKE")
    request: Mapped[ResourceRequest] = mapped_column(RequestDocument)
    #: the serving argv with {port} and {model_dir} still in it
    command: Mapped[list[str]] = mapped_column(Document)
    #: where the replicas read the model (the artifact itself, or its verified copy at the center)
    model_dir: Mapped[str | None] = mapped_column(Text)
    min_replicas: Mapped[int] = mapped_column(Integer, default=1)
    max_replicas: Mapped[int] = mapped_column(Integer, default=1)
    desired_replicas: Mapped[int] = mapped_column(Integer, default=1)
    #: replicas answering requests as of the controller's last change (migration 0025): what every replica tells
    ready_replicas: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    target_per_replica: Mapped[float] = mapped_column(Float, default=1.0)
    idempotent: Mapped[bool] = mapped_column(Boolean, default=False)
    deadline_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    policy: Mapped[str | None] = mapped_column(String(20))
    placement: Mapped[dict[str, Any] | None] = mapped_column(Document)
    requests_total: Mapped[int] = mapped_column(BigId, default=0)
    #: tokens an OPENAI service's servers reported in ``usage`` (migration 0018)
    prompt_tokens_total: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    completion_tokens_total: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    #: counted tokens not yet on a bill (only a priced service keeps any), and when they last went on one
    tokens_unbilled: Mapped[int] = mapped_column(BigId, default=0, server_default="0", index=True)
    tokens_billed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: the gateway's price per million tokens when the service was deployed (None: tokens are free)
    price_per_million_tokens: Mapped[Decimal | None] = mapped_column(MONEY)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: on a PEER center: the service's id at the peer gateway, once deployed there
    remote_id: Mapped[str | None] = mapped_column(String(200))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: the last scaling step (the cool-down counts from here)
    scaled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ServiceEventRow(Base):
    __tablename__ = "service_events"
    __table_args__ = (UniqueConstraint("service_id", "seq", name="uq_service_events_service_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(20))
    replicas_ready: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
