"""The webhook tables: endpoints, the delivery outbox, and each delivery's attempts.

A delivery row is written in the transaction of the event that causes it (a job's end, a
budget alert), so an event is never committed without its deliveries nor the reverse; the
deliverer works the outbox from the database, so a restart loses nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import BigId, Document, UtcDateTime, utcnow


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    #: the HMAC key: shown to the caller once, at creation; needed in clear to sign each delivery
    secret: Mapped[str] = mapped_column(String(100))
    #: the event kinds it receives (``JOB_ENDED`` ...)
    event_kinds: Mapped[list[str]] = mapped_column(Document)
    description: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDeliveryRow(Base):
    """One event for one endpoint: the outbox. ``delivery_id`` is sent with every attempt,
    the same each time, so a receiver can drop a repeat (delivery is at least once)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: shared by the deliveries of one event to several endpoints
    event_id: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    event_kind: Mapped[str] = mapped_column(String(40))
    #: the exact bytes every attempt sends (the signature covers them)
    body: Mapped[str] = mapped_column(Text)
    #: PENDING (due at ``next_attempt_at``), DELIVERED, FAILED (attempts exhausted), CANCELLED (endpoint deleted)
    state: Mapped[str] = mapped_column(String(20), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: a deliverer working on it holds it until then; after a crash another may take it
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: the receiver's HTTP status; None when no answer came (refused, timeout, forbidden address)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
