"""Datasets and models: registration with validation, and their lineage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from resolvers.access.directory import AccountDirectory
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import CenterRegistry
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key
from resolvers.data.areas import path_of
from resolvers.data.digest import CHECKSUM_PATTERN, Measured, algorithm_of, measure
from store import accounts as account_store
from store import datasets as dataset_store
from store import jobs as job_store
from store import transfers as transfer_store
from store.db import Database
from store.tables import AccountRow, DatasetReplicaRow, DatasetRow, ModelRow
from store.types import utcnow

_CHECKSUM = CHECKSUM_PATTERN
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
    def __init__(
        self, db: Database, registry: CenterRegistry, import_roots: Sequence[Path] = (), directory: AccountDirectory | None = None
    ) -> None:
        self.db = db
        #: told of every change to an account's storage quota (every gateway's cache drops the account)
        self.directory = directory or AccountDirectory(db)
        self.registry = registry
        #: folders besides the centers' data roots whose files may be registered by a file:// uri
        self.import_roots = [Path(root).absolute() for root in import_roots]

    def _outside_roots(self, uri: str, field_path: tuple[str, ...]) -> UserErrorData | None:
        """A file:// uri must name a path under a center's data root or an import root (never /etc/shadow)."""
        path = path_of(uri)
        if path is None:
            return None
        roots = [center.data_root for center in self.registry.all() if center.data_root is not None] + self.import_roots
        resolved = path.resolve()
        if any(resolved.is_relative_to(root.resolve()) for root in roots):
            return None
        return UserErrorData("a file:// uri must lie under a center's data root or one of data_import_roots", "URI_NOT_ALLOWED", field_path)

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
        errors.extend(
            refusal
            for refusal in [self._outside_roots(request.uri, ("uri",))]
            + [self._outside_roots(uri, ("replicas", str(index), "uri")) for index, (_, uri) in enumerate(replica_centers)]
            if refusal is not None
        )
        if errors:
            return Registered(errors=errors)
        size_bytes, checksum = request.size_bytes, request.checksum
        measured = await _measure_local(request.uri, checksum)
        if isinstance(measured, UserErrorData):
            return Registered(errors=[measured])
        if measured is not None:  # the gateway can read it: what it found is what is recorded
            if size_bytes is not None and size_bytes != measured.size_bytes:
                message = f"sizeBytes says {size_bytes}; the gateway found {measured.size_bytes} bytes at the uri"
                return Registered(errors=[UserErrorData(message, "SIZE_MISMATCH", ("sizeBytes",))])
            size_bytes, checksum = measured.size_bytes, measured.checksum
        replicas: list[DatasetReplicaRow] = []
        for index, (key, uri) in enumerate(dict(replica_centers).items()):
            copy = await _measure_local(uri, checksum) if checksum is not None else None
            if isinstance(copy, UserErrorData):
                return Registered(errors=[replace(copy, field=("replicas", str(index), "uri"))])
            # a copy the gateway checked is VERIFIED; one it cannot read is only claimed (not listed, not counted)
            state, verified_at = ("VERIFIED", utcnow()) if copy is not None else ("DECLARED", None)
            replicas.append(DatasetReplicaRow(center_id=key, uri=uri, state=state, verified_at=verified_at))
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
                    size_bytes=size_bytes,
                    checksum=checksum,
                )
                session.add(row)
                await session.flush()
                for replica in replicas:
                    replica.dataset_id = row.id
                session.add_all(replicas)
        except IntegrityError:  # a concurrent twin registered the same name and version first
            return _already_exists("dataset", request.name, version)
        return Registered(dataset=row)

    async def set_storage_quota(self, account_id: str, max_bytes: int | None) -> tuple[AccountRow | None, list[UserErrorData]]:
        """Limit the bytes of verified copies an account keeps (None: no limit); copies already kept stay."""
        errors = _check_storage_quota(max_bytes)
        key = int_key(account_id, "Account")
        async with self.db.transaction() as session:
            account = (await account_store.accounts_by_ids(session, [key])).get(key) if key is not None else None
            if account is None:
                errors.append(UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",)))
            if errors:
                return None, errors
            assert account is not None
            account.max_storage_bytes = max_bytes
        await self.directory.changed(account.id)
        return account, []

    async def stored_bytes(self, account_ids: Sequence[int]) -> dict[int, int]:
        async with self.db.read() as session:
            return await transfer_store.stored_bytes(session, account_ids)

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


async def _measure_local(uri: str, checksum: str | None) -> Measured | UserErrorData | None:
    """What the gateway finds at a ``file://`` uri it can read, checked against ``checksum``; None when it cannot read it."""
    path = path_of(uri)
    if path is None or not path.exists():
        return None
    measured = await measure(path, algorithm_of(checksum))
    if checksum is not None and measured.checksum != checksum:
        return UserErrorData(f"the checksum is {checksum}; the gateway computed {measured.checksum}", "CHECKSUM_MISMATCH", ("checksum",))
    return measured


MAX_STORAGE_BYTES = 2**63 - 1


def _check_storage_quota(max_bytes: int | None) -> list[UserErrorData]:
    if max_bytes is not None and not (0 <= max_bytes <= MAX_STORAGE_BYTES):
        return [UserErrorData("maxBytes must be between 0 and 2^63-1, or null for no limit", "INVALID_QUOTA", ("maxBytes",))]
    return []


def _already_exists(kind: str, name: str, version: str) -> Registered:
    return Registered(errors=[UserErrorData(f"{kind} {name} version {version} already exists", "ALREADY_EXISTS", ("version",))])
