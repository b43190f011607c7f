"""``[storage]``: where the gateway's artifact store keeps uploads (a folder under ``data_dir``, or an S3-compatible store)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: S3 parts are at least 5 MiB (all but the last); 8 MiB is what the AWS tools send
MIN_PART_BYTES = 5 * 1024 * 1024


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["directory", "s3"] = "directory"
    #: the store's URL, e.g. http://127.0.0.1:7480 (Ceph's RADOS Gateway); unset: AWS S3 itself
    endpoint: str | None = None
    bucket: str | None = None
    region: str = "us-east-1"
    #: what every key the gateway writes starts with (several gateways may share one bucket)
    prefix: str = "aicn/"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    secret_access_key_file: str | None = Field(default=None, description="a file holding the secret access key")
    #: ``path`` (http://host/bucket/key: what Ceph and most self-hosted stores need) or ``virtual`` (bucket.host)
    addressing_style: Literal["path", "virtual"] = "path"
    #: how much of an upload is gathered into one multipart part
    part_bytes: int = Field(default=8 * 1024 * 1024, ge=MIN_PART_BYTES)

    @model_validator(mode="after")
    def _complete(self) -> StorageSettings:
        if self.kind != "s3":
            return self
        if not self.bucket:
            raise ValueError('[storage] kind = "s3" needs a bucket')
        if self.secret_access_key is not None and self.secret_access_key_file is not None:
            raise ValueError("[storage] takes secret_access_key or secret_access_key_file, not both")
        has_secret = self.secret_access_key is not None or self.secret_access_key_file is not None
        if (self.access_key_id is None) != (not has_secret):
            raise ValueError("[storage] needs access_key_id together with secret_access_key or secret_access_key_file")
        return self

    def resolved_secret(self) -> str | None:
        if self.secret_access_key is not None:
            return self.secret_access_key.get_secret_value()
        if self.secret_access_key_file is not None:
            return Path(self.secret_access_key_file).read_text().strip()
        return None
