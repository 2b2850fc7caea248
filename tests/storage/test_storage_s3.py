"""What only the S3 backend does: multipart bookkeeping, failed commits, a server going away."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from s3server import MotoServer, create_bucket, list_bucket
from storage_helpers import MiB, chunks, write_blob

from registry.server.storage import (
    S3Storage,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    blob_key,
)


def _storage(endpoint, bucket, tmp_path, **options) -> S3Storage:
    return S3Storage(
        bucket,
        endpoint_url=endpoint.url,
        region=endpoint.region,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        spool_dir=tmp_path / "spool",
        **options,
    )


def test_nothing_reaches_the_bucket_before_commit(s3_endpoint, bucket, tmp_path):
    storage = _storage(s3_endpoint, bucket, tmp_path)
    with storage.upload() as upload:
        for chunk in chunks(12 * MiB):
            upload.write(chunk)
        assert list_bucket(s3_endpoint, bucket) == {"objects": [], "multipart_uploads": []}
        assert upload.temp_path.parent == tmp_path / "spool"
        upload.commit("blobs/visible-now")
    assert list_bucket(s3_endpoint, bucket)["objects"] == ["blobs/visible-now"]


def test_presigned_urls_need_the_option(s3_endpoint, bucket, tmp_path):
    plain = _storage(s3_endpoint, bucket, tmp_path)
    assert plain.presigned_url(write_blob(plain, b"direct")) is None


def test_failed_commit_keeps_the_upload_for_a_retry(s3_endpoint, bucket, tmp_path):
    storage = _storage(s3_endpoint, bucket, tmp_path)
    client = s3_endpoint.client()
    with storage.upload() as upload:
        for chunk in chunks(9 * MiB, seed=5):
            upload.write(chunk)
        client.delete_bucket(Bucket=bucket)  # an operator's mistake, mid-upload
        with pytest.raises(StorageConfigError, match=f"bucket '{bucket}' does not exist"):
            storage.commit(upload, "blobs/retried")
        assert upload.state == "open"
        client.create_bucket(Bucket=bucket)
        info = storage.commit(upload, "blobs/retried")
    assert info.size == 9 * MiB
    assert list_bucket(s3_endpoint, bucket) == {"objects": ["blobs/retried"], "multipart_uploads": []}
    assert list((tmp_path / "spool").iterdir()) == []


def test_stale_multipart_uploads_are_aborted(s3_endpoint, bucket, tmp_path):
    storage = _storage(s3_endpoint, bucket, tmp_path, prefix="mine")
    client = s3_endpoint.client()
    # As left behind by a worker killed in the middle of a commit.
    client.create_multipart_upload(Bucket=bucket, Key="mine/blobs/half-sent")
    client.create_multipart_upload(Bucket=bucket, Key="theirs/blobs/other-prefix")
    # moto reports every multipart upload as initiated on 2010-11-10, so the age guard is
    # checked with ages on both sides of that date.
    assert storage.cleanup_stale_uploads(timedelta(days=365 * 30)) == 0
    assert storage.cleanup_stale_uploads(timedelta(hours=1)) == 1
    assert list_bucket(s3_endpoint, bucket)["multipart_uploads"] == ["theirs/blobs/other-prefix"]


def test_a_server_dying_mid_read_is_an_error_not_a_short_blob(tmp_path):
    server = MotoServer()
    try:
        bucket = create_bucket(server.endpoint)
        storage = _storage(server.endpoint, bucket, tmp_path, max_attempts=1, read_timeout=5)
        total = 48 * MiB  # far more than the socket buffers can hold
        digest = hashlib.sha512()
        with storage.upload() as upload:
            for chunk in chunks(total, seed=9):
                upload.write(chunk)
                digest.update(chunk)
            key = upload.commit(blob_key(f"sha512-{digest.hexdigest()}")).key
        reader = storage.open(key)
        assert len(reader.read(MiB)) == MiB
        server.stop()
        with pytest.raises(StorageError):
            while reader.read(MiB):
                pass
        reader.close()
        with pytest.raises(StorageUnavailable, match="cannot reach S3"):
            storage.stat(key)
    finally:
        server.stop()
