"""`S3Storage`: blobs as objects in an S3 bucket (AWS, MinIO, moto), through boto3.

An upload spools into a local temporary file (read back for validation without touching the
network); `commit` sends it with a multipart upload straight to the final key, which S3 makes
visible atomically when the upload completes. A failed commit aborts its multipart upload.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from .base import (
    BlobInfo,
    BlobStorage,
    LimitedReader,
    Upload,
    buffered,
    check_range,
    reclaim_spool_files,
)
from .errors import (
    BlobNotFound,
    InvalidRange,
    KeyConflict,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
)
from .keys import validate_key, validate_prefix

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
SPOOL_PREFIX = "pyrkt-s3-upload-"
SPOOL_SUFFIX = ".part"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit
_CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}
_MISSING_KEY_ERRORS = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET_ERRORS = {"NoSuchBucket"}


class S3Storage(BlobStorage):
    """Blobs as objects `PREFIX<key>` in `bucket`.

    `endpoint_url` selects an S3-compatible server (path-style addressing is then used);
    credentials default to boto3's usual chain when not given. `presign` makes
    `presigned_url` return URLs (signed for `public_endpoint_url` when clients reach the
    server under another address than the registry does). Create one instance per process
    (after a fork): boto3 clients are thread-safe but their connection pools are not fork-safe.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        presign: bool = False,
        public_endpoint_url: str | None = None,
        create_bucket: bool = False,
        spool_dir: str | os.PathLike[str] | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        check: bool = True,
    ) -> None:
        if not bucket:
            raise StorageConfigError("S3 storage needs a bucket name")
        if part_size < 5 * MiB:
            raise StorageConfigError("S3 part_size must be at least 5 MiB (the S3 minimum)")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.prefix = _normalize_prefix(prefix)
        self.presign = presign
        self._create_bucket = create_bucket
        self.spool_dir = Path(spool_dir or Path(tempfile.gettempdir()) / "pyrkt-s3-spool")
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageConfigError(
                f"cannot create S3 spool directory {self.spool_dir}: {exc.strerror}"
            ) from exc
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=self.region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max(10, max_concurrency * 2),
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._presigner = (
            session.client("s3", endpoint_url=public_endpoint_url, config=config)
            if public_endpoint_url
            else self._client
        )
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=max_concurrency,
            use_threads=max_concurrency > 1,
        )
        if check:
            self.check()

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    # -- writing -------------------------------------------------------------------------------
    def upload(self) -> Upload:
        path = self.spool_dir / f"{SPOOL_PREFIX}{uuid.uuid4().hex}{SPOOL_SUFFIX}"
        try:
            return Upload(self, path)
        except OSError as exc:
            raise StorageError(f"cannot start an upload in {self.spool_dir}: {exc}") from exc

    def commit(self, upload: Upload, key: str) -> BlobInfo:
        if upload.storage is not self:
            raise StorageError(f"{upload!r} belongs to {upload.storage!r}, not {self!r}")
        name = self._object_name(key)
        spool = upload._finish_writing(durable=False)
        size = spool.stat().st_size
        existing = self._head(key, name)
        if existing is not None:
            if existing.size != size:
                raise KeyConflict(
                    f"{key!r} already holds {existing.size} bytes; refusing {size} different bytes"
                )
            # Content-addressed: an identical blob is already there.
            upload._mark_committed()
            spool.unlink(missing_ok=True)
            return existing
        for attempt in (1, 2):
            try:
                # By file name, s3transfer reads each part from disk when it sends it (bounded
                # memory) and aborts the multipart upload if any part fails.
                self._client.upload_file(
                    str(spool),
                    self.bucket,
                    name,
                    ExtraArgs={"ContentType": "application/octet-stream"},
                    Config=self._transfer,
                )
                break
            except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
                if attempt == 1 and self._recreate_missing_bucket(exc):
                    continue
                raise self._translate(exc, f"commit of {key!r}") from exc
        upload._mark_committed()
        spool.unlink(missing_ok=True)
        info = self._head(key, name)
        if info is None:
            raise StorageError(f"commit of {key!r} finished but the object is not visible")
        return info

    # -- reading -------------------------------------------------------------------------------
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        check_range(start, end)
        name = self._object_name(key)
        if end is not None and end == start:
            return self._empty_reader(key, start)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            try:
                response = self._client.get_object(**params)
            except ClientError as exc:
                if not self._recreate_missing_bucket(exc):
                    raise
                response = self._client.get_object(**params)  # now NoSuchKey: BlobNotFound
        except ClientError as exc:
            if _code(exc) in {"InvalidRange", "416"}:
                # S3 refuses a range starting at the size; our contract allows it (empty).
                return self._empty_reader(key, start)
            raise self._translate(exc, f"read of {key!r}", key=key) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, f"read of {key!r}") from exc
        return buffered(
            LimitedReader(
                response["Body"],
                int(response["ContentLength"]),
                name=repr(key),
                translate=lambda exc: self._translate_stream_error(exc, key),
            )
        )

    def stat(self, key: str) -> BlobInfo:
        info = self._head(key, self._object_name(key))
        if info is None:
            raise BlobNotFound(key)
        return info

    def exists(self, key: str) -> bool:
        return self._head(key, self._object_name(key)) is not None

    def delete(self, key: str) -> bool:
        name = self._object_name(key)
        existed = self._head(key, name) is not None
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, f"delete of {key!r}") from exc
        return existed

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    if _is_valid_key(key):  # skip foreign objects we could never have written
                        yield key
        except (ClientError, BotoCoreError) as exc:
            if self._recreate_missing_bucket(exc):
                return  # a new, empty bucket holds no keys
            raise self._translate(exc, f"listing of {prefix!r}") from exc

    def presigned_url(
        self, key: str, expires: int | timedelta = 3600, *, content_type: str | None = None
    ) -> str | None:
        """A GET URL valid for `expires`; None unless `presign` is on. Does not check existence."""
        if not self.presign:
            return None
        seconds = int(expires.total_seconds() if isinstance(expires, timedelta) else expires)
        if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"presigned URL lifetime must be 1..{MAX_PRESIGN_SECONDS} seconds")
        params = {"Bucket": self.bucket, "Key": self._object_name(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        return self._presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=seconds
        )

    # -- maintenance ---------------------------------------------------------------------------
    def cleanup_stale_uploads(self, older_than: timedelta, *, dry_run: bool = False) -> int:
        """Abort multipart uploads (left by crashed commits) older than `older_than`, and
        remove spool files whose process died. Spool files are per host: run this on every
        registry host."""
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Uploads", ()):
                    if item["Initiated"] < cutoff:
                        if not dry_run:
                            self._client.abort_multipart_upload(
                                Bucket=self.bucket, Key=item["Key"], UploadId=item["UploadId"])
                        removed += 1
        except (ClientError, BotoCoreError) as exc:
            if not self._recreate_missing_bucket(exc):
                raise self._translate(exc, "cleanup of stale multipart uploads") from exc
        return removed + self.reclaim_dead_uploads(dry_run=dry_run)

    def reclaim_dead_uploads(self, *, dry_run: bool = False) -> int:
        try:
            entries = [e for e in os.scandir(self.spool_dir)
                       if e.name.startswith(SPOOL_PREFIX) and e.name.endswith(SPOOL_SUFFIX)]
        except FileNotFoundError:
            return 0
        return reclaim_spool_files(iter(entries), dry_run=dry_run)

    def check(self) -> None:
        """Make sure the bucket is reachable and ours (creating it if `create_bucket`)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = _code(exc)
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._diagnose_bucket_error(exc) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "bucket check") from exc
        if not self._create_bucket:
            raise StorageConfigError(
                f"S3 bucket {self.bucket!r} does not exist{self._where()}; "
                "create it or enable create_bucket"
            )
        self._make_bucket()

    # -- helpers -------------------------------------------------------------------------------
    def _recreate_missing_bucket(self, exc: BaseException) -> bool:
        """After a NoSuchBucket answer (the S3 server came back empty, someone deleted the
        bucket): create it again when `create_bucket` allows, and say whether to retry.
        Handled here, where storage is used, so no health probe is needed to recover."""
        if isinstance(exc, S3UploadFailedError):
            exc = exc.__cause__ or exc.__context__ or exc
        if not (self._create_bucket and isinstance(exc, ClientError)
                and _code(exc) in _MISSING_BUCKET_ERRORS):
            return False
        self._make_bucket()
        return True

    def _object_name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _head(self, key: str, name: str) -> BlobInfo | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_ERRORS:
                return None
            raise self._translate(exc, f"stat of {key!r}") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, f"stat of {key!r}") from exc
        return BlobInfo(
            key=key,
            size=int(response["ContentLength"]),
            mtime=response["LastModified"].astimezone(UTC),
            etag=str(response.get("ETag", "")).strip('"'),
        )

    def _empty_reader(self, key: str, start: int) -> BinaryIO:
        size = self.stat(key).size  # raises BlobNotFound for a missing key
        if start > size:
            raise InvalidRange(f"range start {start} is beyond the {size} bytes of {key!r}")
        return buffered(LimitedReader(io.BytesIO(b""), 0, name=repr(key)))

    def _make_bucket(self) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**params)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou"}:  # another worker won the race
                raise self._diagnose_bucket_error(exc) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "bucket creation") from exc

    def _diagnose_bucket_error(self, exc: ClientError) -> StorageError:
        """HEAD answers carry no error code; ask again with a GET to name the real cause."""
        if _code(exc) in {"403", "400"}:
            try:
                self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
            except ClientError as detailed:
                return self._translate(detailed, "bucket check")
            except BotoCoreError as detailed:
                return self._translate(detailed, "bucket check")
        return self._translate(exc, "bucket check")

    def _translate(
        self, exc: BaseException, action: str, *, key: str | None = None
    ) -> StorageError:
        """Turn a boto3/botocore failure into a StorageError an operator can act on."""
        if isinstance(exc, S3UploadFailedError):
            # boto3 raises it while handling the real error, without chaining it as the cause.
            exc = exc.__cause__ or exc.__context__ or exc
        if isinstance(exc, NoCredentialsError):
            return StorageConfigError(
                f"no S3 credentials for bucket {self.bucket!r}: set access_key and secret_key"
            )
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message") or code
            if key is not None and code in _MISSING_KEY_ERRORS:
                return BlobNotFound(key)
            if code in _MISSING_BUCKET_ERRORS:
                return StorageConfigError(
                    f"S3 bucket {self.bucket!r} does not exist{self._where()}"
                )
            if code in _CREDENTIAL_ERRORS:
                return StorageConfigError(
                    f"S3 refused {action} in bucket {self.bucket!r}{self._where()} ({code}: "
                    f"{message}); check access_key, secret_key and the bucket's permissions"
                )
            return StorageError(f"S3 {action} failed ({code}: {message})")
        if isinstance(exc, BotoCoreError):
            # Connection refused, DNS failure, timeouts: all "cannot reach".
            return StorageUnavailable(
                f"cannot reach S3{self._where() or ' endpoint'} for {action}: {exc}"
            )
        return StorageError(f"S3 {action} failed: {exc}")

    def _translate_stream_error(self, exc: Exception, key: str) -> StorageError | None:
        """A read failing mid-stream (connection reset, timeout, short body)."""
        if isinstance(exc, BotoCoreError | ClientError):
            return self._translate(exc, f"read of {key!r}")
        if isinstance(exc, OSError):  # urllib3 errors not wrapped by botocore
            return StorageUnavailable(f"S3 read of {key!r} broke off{self._where()}: {exc}")
        return None

    def _where(self) -> str:
        return f" at {self.endpoint_url}" if self.endpoint_url else ""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _normalize_prefix(prefix: str) -> str:
    prefix = (prefix or "").strip("/")
    if not prefix:
        return ""
    try:
        validate_key(prefix)
    except StorageError as exc:
        raise StorageConfigError(f"bad S3 prefix {prefix!r}: {exc}") from exc
    return prefix + "/"


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except StorageError:
        return False
    return True
