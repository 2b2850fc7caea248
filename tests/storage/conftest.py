"""Fixtures of the storage tests: every backend behind one `Backend` handle (local and S3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from s3server import S3Endpoint, list_bucket, s3_endpoint, temporary_bucket  # noqa: F401 - fixture

from registry.server.storage import BlobStorage, LocalStorage, S3Storage


@dataclass
class Backend:
    """A storage under test plus a way to see everything it left anywhere."""

    name: str
    storage: BlobStorage
    contents: Callable[[], tuple[set[str], list[str]]]  # (committed keys, temporaries)


def _local_contents(root: Path) -> Callable[[], tuple[set[str], list[str]]]:
    def contents() -> tuple[set[str], list[str]]:
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
        temporaries = [f for f in files if f.startswith(".")]
        return {f for f in files if not f.startswith(".")}, temporaries

    return contents


def _s3_contents(
    endpoint: S3Endpoint, bucket: str, prefix: str, spool: Path
) -> Callable[[], tuple[set[str], list[str]]]:
    def contents() -> tuple[set[str], list[str]]:
        listing = list_bucket(endpoint, bucket)
        # Objects outside the prefix keep their raw name, so a leak is visible in the set.
        keys = {name.removeprefix(prefix) for name in listing["objects"]}
        temporaries = [f"multipart:{name}" for name in listing["multipart_uploads"]]
        temporaries += [f"spool:{p.name}" for p in sorted(spool.iterdir())]
        return keys, temporaries

    return contents


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "blobs-root"
        yield Backend("local", LocalStorage(root), _local_contents(root))
        return
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    with temporary_bucket(endpoint) as bucket:
        yield _s3_backend(endpoint, bucket, tmp_path / "spool")


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> Iterator[str]:  # noqa: F811 - s3_endpoint is the fixture
    """A fresh bucket on the test S3 server, deleted with its contents afterwards."""
    with temporary_bucket(s3_endpoint) as name:
        yield name


def _s3_backend(endpoint: S3Endpoint, bucket: str, spool: Path) -> Backend:
    storage = S3Storage(
        bucket,
        endpoint_url=endpoint.url,
        region=endpoint.region,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        prefix="registry",
        presign=True,
        spool_dir=spool,
        max_concurrency=2,  # parallel part uploads, so commits exercise the threaded path
    )
    return Backend("s3", storage, _s3_contents(endpoint, bucket, "registry/", spool))

