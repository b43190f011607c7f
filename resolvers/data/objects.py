"""The artifact store's S3-compatible backend: objects in one bucket, read and written with boto3.

boto3's client is blocking and thread-safe; everything here runs in worker threads (the
copier and the download iterator already do, uploads hand each part to one). A failure
becomes ``ObjectStoreFailed`` with a code and a message naming the bucket and the S3 error
code, never the credentials (botocore's messages hold neither the secret nor a signature).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlparse

from resolvers.data.digest import CHUNK_BYTES

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

SCHEME = "s3"
#: chunks of an object read ahead of the caller
READ_AHEAD_CHUNKS = 2
T = TypeVar("T")


class ObjectStoreFailed(Exception):
    """The store could not do what was asked; ``code`` is STORE_UNAVAILABLE or OBJECT_MISSING."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    addressing_style: Literal["path", "virtual"] = "path"
    part_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime


class ObjectStore:
    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.bucket = location.bucket
        self.part_bytes = location.part_bytes
        import boto3  # here: a gateway without an S3 store never pays for importing it
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": location.addressing_style},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # a part's hash is checked by the store only when asked: the gateway computes its own digest
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=location.endpoint,
            region_name=location.region,
            aws_access_key_id=location.access_key_id,
            aws_secret_access_key=location.secret_access_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"ObjectStore(s3://{self.bucket}/{self.location.prefix})"

    # ------------------------------------------------------------------ names

    def uri(self, key: str) -> str:
        return f"{SCHEME}://{self.bucket}/{quote(key)}"

    def key_of(self, uri: str) -> str | None:
        """The key a URI names in this store's bucket, under its prefix (None for anything else)."""
        parsed = urlparse(uri)
        if parsed.scheme != SCHEME or parsed.netloc != self.bucket:
            return None
        key = unquote(parsed.path.removeprefix("/"))
        return key if key.startswith(self.location.prefix) and key != self.location.prefix else None

    # ------------------------------------------------------------------ the bucket

    def ensure_bucket(self) -> None:
        """Make the bucket when it does not exist yet."""

        from botocore.exceptions import ClientError

        def ensure() -> None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if _status(error) != 404:
                    raise
                self.client.create_bucket(Bucket=self.bucket)

        self._call(f"reaching bucket {self.bucket}", ensure)

    def pending_uploads(self) -> list[PendingUpload]:
        """Multipart uploads begun under the prefix and neither completed nor aborted."""

        def listing() -> list[PendingUpload]:
            found: list[PendingUpload] = []
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.location.prefix):
                found += [PendingUpload(item["Key"], item["UploadId"], item["Initiated"]) for item in page.get("Uploads", [])]
            return found

        return self._call("listing unfinished uploads", listing)

    def keys(self) -> list[str]:
        """Every key under the prefix (tests and operators)."""

        def listing() -> list[str]:
            found: list[str] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.location.prefix):
                found += [item["Key"] for item in page.get("Contents", [])]
            return found

        return self._call("listing objects", listing)

    # ------------------------------------------------------------------ writing: multipart, invisible until completed

    def begin(self, key: str) -> str:
        return str(self._call("starting an upload", lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key))["UploadId"])

    def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        answer = self._call(
            "sending a part",
            lambda: self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data),
        )
        return str(answer["ETag"])

    def complete(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)]
        self._call(
            "completing an upload",
            lambda: self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            ),
        )

    def abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        def abort() -> None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as error:
                if _code(error) != "NoSuchUpload":
                    raise

        self._call("abandoning an upload", abort)

    def delete(self, key: str) -> None:
        self._call("removing an object", lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    # ------------------------------------------------------------------ reading

    def size(self, key: str) -> int | None:
        """The object's bytes; None when there is no such object."""

        from botocore.exceptions import ClientError

        def head() -> int | None:
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            except ClientError as error:
                if _status(error) == 404:
                    return None
                raise

        return self._call("reading an object's size", head)

    def read(self, key: str, first: int, last: int) -> Iterator[bytes]:
        """Bytes ``first`` to ``last`` inclusive, in chunks (memory: a few chunks). A thread of its own reads
        ahead while the caller writes the previous chunk out: the store and the caller's side both keep moving."""
        if last < first:
            return
        answer = self._call("reading an object", lambda: self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={first}-{last}"))
        body = answer["Body"]
        chunks = body.iter_chunks(CHUNK_BYTES)
        ready: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
        stop = threading.Event()

        def fetch() -> None:
            try:
                for chunk in chunks:
                    while not stop.is_set():
                        with contextlib.suppress(queue.Full):
                            ready.put(chunk, timeout=0.5)
                            break
                    if stop.is_set():
                        return
                ready.put(None)
            except Exception as error:  # handed to the reader, which raises it as the store's failure
                ready.put(error)

        reader = threading.Thread(target=fetch, name=f"s3-read-{key[-24:]}", daemon=True)
        reader.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise self._failure("reading an object", item) from None
                yield item
        finally:
            stop.set()
            reader.join()
            body.close()

    # ------------------------------------------------------------------ errors

    def _call(self, doing: str, action: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except (ClientError, BotoCoreError) as error:
            raise self._failure(doing, error) from None

    def _failure(self, doing: str, error: BaseException) -> BaseException:
        """What the caller sees of a store's error (any other error is left as it is)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            if _code(error) in ("NoSuchKey", "NoSuchBucket") or _status(error) == 404:
                return ObjectStoreFailed("OBJECT_MISSING", f"{doing} in bucket {self.bucket}: {_code(error)}")
            return ObjectStoreFailed("STORE_UNAVAILABLE", f"{doing} in bucket {self.bucket} failed: {_code(error)}")
        if isinstance(error, BotoCoreError):
            return ObjectStoreFailed("STORE_UNAVAILABLE", f"{doing} in bucket {self.bucket} failed: {type(error).__name__}")
        return error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "") or "error")


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
