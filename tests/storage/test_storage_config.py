"""`storage_from_config`: building backends and the errors a misconfiguration gets."""

from __future__ import annotations

import time

import pytest
from s3server import delete_bucket, free_port, moto_server
from storage_helpers import write_blob

from registry.server.storage import (
    LocalStorage,
    S3Storage,
    StorageConfigError,
    StorageUnavailable,
    storage_from_config,
)


def test_local_backend(tmp_path):
    storage = storage_from_config({"backend": "local", "root": str(tmp_path / "data")})
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "data").resolve()
    key = write_blob(storage, b"configured")
    assert (tmp_path / "data" / key).read_bytes() == b"configured"


def test_local_is_the_default_backend(tmp_path):
    assert isinstance(storage_from_config({"root": tmp_path}), LocalStorage)


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({"backend": "local"}, "needs a root directory"),
        ({"backend": "local", "root": ""}, "needs a root directory"),
        ({"backend": "ftp", "root": "/x"}, "unknown storage backend 'ftp'"),
        ({"backend": "local", "root": "/x", "roots": "/y"}, "unknown local storage option"),
        ({"backend": "local", "root": "/x", "fsync": "maybe"}, "option fsync: expected a boolean"),
        ({"backend": "s3"}, "needs a bucket"),
        ({"backend": "s3", "bucket": "b", "bukket": "c"}, r"unknown s3 storage option\(s\): bukket"),
        ({"backend": "s3", "bucket": "b", "part_size": "big"}, "option part_size: expected an integer"),
        ({"backend": "s3", "bucket": "b", "part_size": 1024}, "at least 5 MiB"),
        ({"backend": "s3", "bucket": "b", "prefix": "../up", "check": False}, "bad S3 prefix"),
    ],
)
def test_bad_configurations(config, complaint, tmp_path):
    with pytest.raises(StorageConfigError, match=complaint):
        storage_from_config(config)


def test_local_root_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageConfigError, match="cannot create local storage directory"):
        storage_from_config({"backend": "local", "root": str(blocker / "data")})


def test_s3_backend_with_string_options(s3_endpoint, bucket, tmp_path):
    config = s3_endpoint.storage_config(bucket, presign="true", prefix="/team/", spool_dir=str(tmp_path))
    config["endpoint_url"] = s3_endpoint.url
    storage = storage_from_config(config)
    assert isinstance(storage, S3Storage)
    assert (storage.presign, storage.prefix) == (True, "team/")
    key = write_blob(storage, b"in a prefix")
    names = [o["Key"] for o in s3_endpoint.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert names == [f"team/{key}"]


def test_s3_prefixes_do_not_see_each_other(s3_endpoint, bucket, tmp_path):
    first = storage_from_config(s3_endpoint.storage_config(bucket, prefix="one", spool_dir=str(tmp_path)))
    second = storage_from_config(s3_endpoint.storage_config(bucket, prefix="one-two", spool_dir=str(tmp_path)))
    key = write_blob(first, b"mine")
    assert list(first.iter_keys()) == [key]
    assert list(second.iter_keys()) == []
    assert not second.exists(key)


def test_s3_missing_bucket(s3_endpoint):
    with pytest.raises(StorageConfigError) as raised:
        storage_from_config(s3_endpoint.storage_config("no-such-bucket-here"))
    message = str(raised.value)
    assert "'no-such-bucket-here' does not exist" in message
    assert s3_endpoint.url in message and "create_bucket" in message


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_s3_create_bucket(s3_endpoint, region, tmp_path):
    bucket = f"created-{region}-{time.time_ns()}"
    config = s3_endpoint.storage_config(
        bucket, create_bucket=True, region=region, spool_dir=str(tmp_path)
    )
    storage = storage_from_config(config)
    try:
        assert write_blob(storage, b"first blob") in set(storage.iter_keys())
        # A second process starting on the same configuration finds the bucket and keeps it.
        again = storage_from_config(config)
        assert len(list(again.iter_keys())) == 1
    finally:
        delete_bucket(s3_endpoint, bucket)


def test_s3_unreachable_endpoint():
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=f"cannot reach S3 at http://127.0.0.1:{port}"):
        storage_from_config(
            {"backend": "s3", "bucket": "b", "endpoint_url": f"http://127.0.0.1:{port}",
             "access_key": "k", "secret_key": "s"}
        )
    assert time.monotonic() - started < 15


def test_s3_check_can_be_deferred(tmp_path):
    port = free_port()
    storage = storage_from_config(
        {"backend": "s3", "bucket": "b", "endpoint_url": f"http://127.0.0.1:{port}",
         "access_key": "k", "secret_key": "s", "check": "false", "spool_dir": str(tmp_path),
         "max_attempts": "1"}
    )
    with pytest.raises(StorageUnavailable):
        storage.exists("blobs/anything")
    with pytest.raises(StorageUnavailable):
        storage.check()


def test_s3_bad_credentials():
    """A server that checks credentials (moto with authentication on) refuses unknown keys."""
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as endpoint:
        config = endpoint.storage_config("any-bucket", access_key="AKIAWRONG", secret_key="nope")
        with pytest.raises(StorageConfigError) as raised:
            storage_from_config(config)
    message = str(raised.value)
    assert "InvalidAccessKeyId" in message
    assert "check access_key, secret_key" in message
