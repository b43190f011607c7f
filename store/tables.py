"""The tables. One declarative base; repositories in this package read and write them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.resources import ResourceRequest
from store.states import JobEventKind, JobKind, JobState
from store.types import BigId, Document, EnumString, Fixed, RequestDocument, UtcDateTime, utcnow


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    max_standard_units: Mapped[float | None] = mapped_column(Float)
    #: bytes of verified dataset and model copies the account may keep (None: no limit)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigId)
    #: QUEUE or REFUSE a job over the quota; null: the gateway's ``quota_mode`` setting
    quota_mode: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CenterRow(Base):
    __tablename__ = "centers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_id_id", "owner_id", "id"),
        Index("ix_jobs_center_id_state", "center_id", "state"),
        Index("ix_jobs_center_id_external_id", "center_id", "external_id"),
        Index("ix_jobs_owner_id_state", "owner_id", "state"),
        Index("ix_jobs_owner_id_cost_id", "owner_id", "cost", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[JobKind] = mapped_column(EnumString(JobKind, 20))
    state: Mapped[JobState] = mapped_column(EnumString(JobState, 20), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    center_id: Mapped[int | None] = mapped_column(ForeignKey("centers.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    request: Mapped[ResourceRequest] = mapped_column(RequestDocument)
    command: Mapped[list[str]] = mapped_column(Document)
    environment: Mapped[dict[str, Any] | None] = mapped_column(Document)
    output_model_name: Mapped[str | None] = mapped_column(String(200))
    output_dataset_name: Mapped[str | None] = mapped_column(String(200))
    policy: Mapped[str | None] = mapped_column(String(20))
    placement: Mapped[dict[str, Any] | None] = mapped_column(Document)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: SHA-256 of the submission the key first came with (null for jobs from before migration 0005)
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[dict[str, Any] | None] = mapped_column(Document)
    progress_count: Mapped[int] = mapped_column(Integer, default=0)
    #: orders the network queue: higher first (see resolvers.jobs.queue for aging)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # the price quoted at submission (later price changes do not apply) and the hold it placed
    unit_price: Mapped[Decimal | None] = mapped_column(Fixed(20, 6))
    currency: Mapped[str | None] = mapped_column(String(10))
    units_per_device: Mapped[Decimal | None] = mapped_column(Fixed(20, 9))
    hold_amount: Mapped[Decimal | None] = mapped_column(Fixed(20, 6))
    #: what its usage charged (0 until metered): written with the usage record, so `orderBy: COST` pages by an index
    cost: Mapped[Decimal] = mapped_column(Fixed(20, 6), default=Decimal(0), server_default="0")
    #: a replica of this inference service (migration 0010); None for every other job
    service_id: Mapped[int | None] = mapped_column(BigId, index=True)
    #: the stable ids of the gateways that handed this job on, its origin first (null: submitted here)
    via: Mapped[list[str] | None] = mapped_column(Document)


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[JobEventKind] = mapped_column(EnumString(JobEventKind, 20))
    state: Mapped[JobState | None] = mapped_column(EnumString(JobState, 20))
    progress: Mapped[dict[str, Any] | None] = mapped_column(Document)
    message: Mapped[str | None] = mapped_column(Text)


class JobInputRow(Base):
    __tablename__ = "job_inputs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True, index=True)


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name", "version", name="uq_datasets_owner_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    uri: Mapped[str] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigId)
    checksum: Mapped[str | None] = mapped_column(String(200))
    #: the job that wrote it to its AICN_OUTPUT_DIR (None: registered by hand)
    produced_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: when an upload put it in the gateway's artifact store (None: it lives elsewhere; migration 0020)
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DatasetReplicaRow(Base):
    __tablename__ = "dataset_replicas"
    __table_args__ = (UniqueConstraint("dataset_id", "center_id", name="uq_dataset_replicas_dataset_center"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("centers.id"))
    uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="AVAILABLE")
    #: when the copy was verified against the dataset's checksum (storage is metered from then)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner_id", "name", "version", name="uq_models_owner_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    uri: Mapped[str] = mapped_column(Text)
    framework: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigId)
    checksum: Mapped[str | None] = mapped_column(String(200))
    trained_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    #: how to serve it: an argv with {port} and {model_dir} (migration 0010)
    serving_command: Mapped[list[str] | None] = mapped_column(Document)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: when an upload put it in the gateway's artifact store (None: it lives elsewhere; migration 0020)
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ModelReplicaRow(Base):
    __tablename__ = "model_replicas"
    __table_args__ = (UniqueConstraint("model_id", "center_id", name="uq_model_replicas_model_center"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("centers.id"))
    uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="VERIFIED")
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TransferRow(Base):
    """One copy of a dataset to a center: a replica, or a job's input staged into its working area."""

    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_state", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    center_id: Mapped[int] = mapped_column(ForeignKey("centers.id"))
    #: the job whose input this stages (None: a replica)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    source_uri: Mapped[str] = mapped_column(Text)
    destination_uri: Mapped[str] = mapped_column(Text)
    bytes_total: Mapped[int | None] = mapped_column(BigId)
    bytes_done: Mapped[int] = mapped_column(BigId, default=0)
    checksum: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(50))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    #: SHA-256 of the bearer token that may fetch this transfer's source from the artifact store
    token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
