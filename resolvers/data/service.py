"""Datasets and models: registration with validation, and their lineage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from resolvers.access.viewer import Viewer
from resolvers.centers.registry import CenterRegistry
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key
from store import datasets as dataset_store
from store import jobs as job_store
from store.db import Database
from store.tables import DatasetReplicaRow, DatasetRow, ModelRow

_CHECKSUM = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32})$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
MAX_TEXT = 200


@dataclass(frozen=True)
class DatasetRequest:
    name: str
    uri: str
    version: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    checksum: str | None = None
    replicas: Sequence[tuple[str, str]] = ()  # (center global id, uri at that center)


@dataclass(frozen=True)
class ModelRequest:
    name: str
    uri: str
    version: str | None = None
    framework: str | None = None
    trained_by_job_id: str | None = None
    serving_command: Sequence[str] | None = None


@dataclass
class Registered:
    dataset: DatasetRow | None = None
    model: ModelRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


def _check_common(name: str, uri: str, version: str | None, errors: list[UserErrorData]) -> None:
    if not name.strip() or len(name) > MAX_TEXT:
        errors.append(UserErrorData("the name must be 1 to 200 characters", "INVALID_NAME", ("name",)))
    if not _URI.match(uri) or len(uri) > 4000:
        errors.append(UserErrorData("the uri must be an absolute URI such as s3://bucket/path or file:///data/x", "INVALID_URI", ("uri",)))
    if version is not None and not (0 < len(version.strip()) <= 100):
        errors.append(UserErrorData("the version must be 1 to 100 characters", "INVALID_VERSION", ("version",)))


class DataService:
    def __init__(self, db: Database, registry: CenterRegistry) -> None:
        self.db = db
        self.registry = registry

    async def register_dataset(self, viewer: Viewer, request: DatasetRequest) -> Registered:
        errors: list[UserErrorData] = []
        _check_common(request.name, request.uri, request.version, errors)
        if request.size_bytes is not None and not (0 <= request.size_bytes < 2**63):
            errors.append(UserErrorData("sizeBytes must be between 0 and 2^63-1", "INVALID_SIZE", ("sizeBytes",)))
        if request.checksum is not None and not _CHECKSUM.match(request.checksum):
            errors.append(UserErrorData('checksum must look like "sha256:<64 hex digits>"', "INVALID_CHECKSUM", ("checksum",)))
        replica_centers: list[tuple[int, str]] = []
        for index, (center_id, uri) in enumerate(request.replicas):
            key = int_key(center_id, "ComputeCenter")
            if key is None or self.registry.get(key) is None:
                errors.append(UserErrorData("no such center", "CENTER_NOT_FOUND", ("replicas", str(index), "centerId")))
            elif not _URI.match(uri):
                errors.append(UserErrorData("the replica uri must be an absolute URI", "INVALID_URI", ("replicas", str(index), "uri")))
            else:
                replica_centers.append((key, uri))
        if errors:
            return Registered(errors=errors)
        version = request.version or "1"
        try:
            async with self.db.transaction() as session:
                if await dataset_store.find_dataset(session, viewer.account_id, request.name, version) is not None:
                    return _already_exists("dataset", request.name, version)
                row = DatasetRow(
                    owner_id=viewer.account_id,
                    name=request.name,
                    version=version,
                    uri=request.uri,
                    format=request.format,
                    size_bytes=request.size_bytes,
                    checksum=request.checksum,
                )
                session.add(row)
                await session.flush()
                session.add_all(DatasetReplicaRow(dataset_id=row.id, center_id=key, uri=uri) for key, uri in dict(replica_centers).items())
        except IntegrityError:  # a concurrent twin registered the same name and version first
            return _already_exists("dataset", request.name, version)
        return Registered(dataset=row)

    async def register_model(self, viewer: Viewer, request: ModelRequest) -> Registered:
        errors: list[UserErrorData] = []
        _check_common(request.name, request.uri, request.version, errors)
        job_key: int | None = None
        if request.trained_by_job_id is not None:
            job_key = int_key(request.trained_by_job_id, "Job")
            found = None
            if job_key is not None:
                async with self.db.read() as session:
                    found = (await job_store.jobs_by_ids(session, [job_key], viewer.scope)).get(job_key)
            if found is None:
                errors.append(UserErrorData("no such job", "JOB_NOT_FOUND", ("trainedByJobId",)))
        if errors:
            return Registered(errors=errors)
        version = request.version or "1"
        try:
            async with self.db.transaction() as session:
                if await dataset_store.find_model(session, viewer.account_id, request.name, version) is not None:
                    return _already_exists("model", request.name, version)
                row = ModelRow(
                    owner_id=viewer.account_id,
                    name=request.name,
                    version=version,
                    uri=request.uri,
                    framework=request.framework,
                    trained_by_job_id=job_key,
                    serving_command=list(request.serving_command) if request.serving_command else None,
                )
                session.add(row)
                await session.flush()
        except IntegrityError:  # a concurrent twin registered the same name and version first
            return _already_exists("model", request.name, version)
        return Registered(model=row)


def _already_exists(kind: str, name: str, version: str) -> Registered:
    return Registered(errors=[UserErrorData(f"{kind} {name} version {version} already exists", "ALREADY_EXISTS", ("version",))])
