"""A real S3-compatible HTTP server for tests: moto's standalone server in a subprocess.

Use it from any test folder (tests/ is on the import path):

    from s3server import running_s3_server, temporary_bucket

    with running_s3_server() as s3, temporary_bucket(s3) as bucket:
        # s3 is an S3Endpoint; bucket a fresh, uniquely named bucket, deleted afterwards
        # (create_bucket(s3) alone makes one that outlives the block)
        storage = storage_from_config(s3.storage_config(bucket))
        s3.client().list_objects_v2(Bucket=bucket)   # plain boto3, for assertions

or the session fixture: `from s3server import s3_endpoint` in a conftest.py or test module.

When PYRKT_TEST_S3_ENDPOINT is set (CI starts one server for the whole run) that server is
used instead of starting one; credentials come from PYRKT_TEST_S3_ACCESS_KEY /
PYRKT_TEST_S3_SECRET_KEY, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else "testing";
the region from PYRKT_TEST_S3_REGION, else AWS_DEFAULT_REGION, else us-east-1. Servers listen
on 127.0.0.1 only, and the environment is never read by boto3 behind your back: every client
built here gets explicit credentials and endpoint.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Endpoint:
    """Where a test S3 server answers and the credentials it accepts."""

    url: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def client(self) -> Any:
        """A plain boto3 S3 client for this server (for setup and assertions; thread-safe)."""
        return _client_for(self)

    def storage_config(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """A mapping for `registry.server.storage.storage_from_config` using this server."""
        return {
            "backend": "s3",
            "bucket": bucket,
            "endpoint_url": self.url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            **extra,
        }

    def environ(self, bucket: str) -> dict[str, str]:
        """Generic S3 variables (AWS_*, plus PYRKT_TEST_S3_*) for a child process."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "PYRKT_TEST_S3_ENDPOINT": self.url,
            "PYRKT_TEST_S3_BUCKET": bucket,
        }


@functools.cache
def _client_for(endpoint: S3Endpoint) -> Any:
    # Building a boto3 client costs ~0.1 s; tests ask for one per bucket, so share it.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def endpoint_from_environment(environ: Mapping[str, str] = os.environ) -> S3Endpoint | None:
    url = environ.get("PYRKT_TEST_S3_ENDPOINT")
    if not url:
        return None
    return S3Endpoint(
        url=url.rstrip("/"),
        access_key=environ.get("PYRKT_TEST_S3_ACCESS_KEY")
        or environ.get("AWS_ACCESS_KEY_ID")
        or "testing",
        secret_key=environ.get("PYRKT_TEST_S3_SECRET_KEY")
        or environ.get("AWS_SECRET_ACCESS_KEY")
        or "testing",
        region=environ.get("PYRKT_TEST_S3_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
    )


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


class MotoServer:
    """A moto S3 server subprocess on 127.0.0.1; `stop()` ends it (tests of a dying server)."""

    def __init__(self, extra_env: Mapping[str, str] | None = None) -> None:
        port = free_port()
        self.endpoint = S3Endpoint(url=f"http://127.0.0.1:{port}")
        # The child must not inherit credentials or endpoints meant for the code under test.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "PYRKT_TEST_S3_"))
        }
        env.update(extra_env or {})
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self._wait_until_it_answers()
        except BaseException:
            self.stop()
            raise

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.endpoint.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto server at {self.endpoint.url} did not start:\n{output}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def moto_server(extra_env: Mapping[str, str] | None = None) -> Iterator[S3Endpoint]:
    """Start a new moto server for the block (always, ignoring PYRKT_TEST_S3_ENDPOINT).

    `extra_env` reaches moto, e.g. {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} to check credentials.
    """
    server = MotoServer(extra_env)
    try:
        yield server.endpoint
    finally:
        server.stop()


@contextmanager
def running_s3_server() -> Iterator[S3Endpoint]:
    """The S3 server named by PYRKT_TEST_S3_ENDPOINT, or a moto server started for the block."""
    configured = endpoint_from_environment()
    if configured is not None:
        yield configured
        return
    with moto_server() as endpoint:
        yield endpoint


def create_bucket(endpoint: S3Endpoint, name: str | None = None) -> str:
    """Create a fresh bucket (a unique name unless given) and return its name."""
    bucket = name or f"pyrkt-test-{uuid.uuid4().hex[:16]}"
    params: dict[str, Any] = {"Bucket": bucket}
    if endpoint.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": endpoint.region}
    endpoint.client().create_bucket(**params)
    return bucket


def delete_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    """Empty a bucket (objects and unfinished multipart uploads) and delete it."""
    client = endpoint.client()
    for item in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()):
        client.abort_multipart_upload(Bucket=bucket, Key=item["Key"], UploadId=item["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@contextmanager
def temporary_bucket(endpoint: S3Endpoint) -> Iterator[str]:
    """A fresh bucket for the block, deleted with its contents afterwards (a shared server
    such as CI's keeps every object in memory, so tests clean up)."""
    bucket = create_bucket(endpoint)
    try:
        yield bucket
    finally:
        delete_bucket(endpoint, bucket)


def list_bucket(endpoint: S3Endpoint, bucket: str) -> dict[str, list[str]]:
    """Everything in a bucket a test may want to see empty: object keys and multipart uploads."""
    client = endpoint.client()
    objects = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", ())
    ]
    uploads = [item["Key"] for item in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ())]
    return {"objects": objects, "multipart_uploads": uploads}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """One S3 server for the whole test session (import this fixture into a conftest)."""
    with running_s3_server() as endpoint:
        yield endpoint


__all__ = [
    "MotoServer",
    "S3Endpoint",
    "create_bucket",
    "delete_bucket",
    "endpoint_from_environment",
    "free_port",
    "list_bucket",
    "moto_server",
    "running_s3_server",
    "s3_endpoint",
    "temporary_bucket",
]
