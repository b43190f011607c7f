"""The real S3-compatible store the tests use: Ceph's RADOS Gateway started by scripts/start-ceph.sh."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from aicn.runtime import object_store
from aicn.storage_settings import MIN_PART_BYTES, StorageSettings
from resolvers.data.objects import ObjectStore
from tests.conftest import require_service

ENV_FILE = Path(os.environ.get("CEPH_ENV_FILE", "/run/ceph-ci.env"))
BUCKET = "aicn-tests"


def ceph_environment() -> dict[str, str]:
    require_service("127.0.0.1", 7480, "Ceph's RADOS Gateway (scripts/start-ceph.sh)")
    lines = ENV_FILE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def s3_settings(**overrides: object) -> StorageSettings:
    """A store of its own for one test: the CI bucket, under a fresh prefix, in parts of the smallest size S3 allows."""
    ceph = ceph_environment()
    options: dict[str, object] = {
        "kind": "s3",
        "endpoint": ceph["CEPH_S3_ENDPOINT"],
        "bucket": BUCKET,
        "prefix": f"t-{uuid.uuid4().hex[:12]}/",
        "access_key_id": ceph["CEPH_S3_ACCESS_KEY"],
        "secret_access_key_file": ceph["CEPH_S3_SECRET_KEY_FILE"],
        "part_bytes": MIN_PART_BYTES,
    }
    options.update(overrides)
    return StorageSettings.model_validate(options)


def store_of(settings: StorageSettings) -> ObjectStore:
    store = object_store(settings)
    assert store is not None
    return store


def s3_toml(settings: StorageSettings) -> str:
    """The ``[storage]`` table of a gateway's TOML file."""
    lines = ["[storage]"]
    for name, value in settings.model_dump(exclude_none=True).items():
        lines.append(f"{name} = {value}" if isinstance(value, int) else f'{name} = "{value}"')
    return "\n".join(lines) + "\n"


def empty(store: ObjectStore) -> None:
    """Remove what a test left under its prefix."""
    for pending in store.pending_uploads():
        store.abort(pending.key, pending.upload_id)
    for key in store.keys():
        store.delete(key)
