"""One behavioural suite, run against every backend (local directory and S3 over HTTP)."""

from __future__ import annotations

import fcntl
import gc
import hashlib
import random
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import MiB, chunks, make_old, sha512_of_chunks, write_blob

from registry.server.storage import (
    BlobNotFound,
    InvalidKey,
    InvalidRange,
    KeyConflict,
    StorageError,
    UploadClosed,
    blob_key,
    iter_chunks,
)

BIG = 40 * MiB  # several S3 multipart parts (8 MiB each)


def _hash_reader(reader, chunk_size: int = MiB) -> tuple[str, int]:
    digest, size = hashlib.sha512(), 0
    for chunk in iter_chunks(reader, chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return f"sha512-{digest.hexdigest()}", size


def _write_big(upload, total: int = BIG, seed: int = 1) -> str:
    """Stream `total` bytes into an upload, hashing them on the way like the server does."""
    digest = hashlib.sha512()
    for chunk in chunks(total, seed):
        upload.write(chunk)
        digest.update(chunk)
    return f"sha512-{digest.hexdigest()}"


def test_big_blob_round_trip(backend):
    storage = backend.storage
    with storage.upload() as upload:
        digest = _write_big(upload)
        assert upload.size == BIG
        with upload.open_for_read() as readback:  # the validation pass
            assert _hash_reader(readback) == (digest, BIG)
        key = blob_key(digest)
        assert not storage.exists(key)
        info = storage.commit(upload, key)
    assert upload.state == "committed"
    assert (info.key, info.size) == (key, BIG)
    assert _hash_reader(storage.open(key)) == (digest, BIG)
    assert backend.contents() == ({key}, [])
    if backend.name == "s3":
        # A multipart ETag ends in "-<parts>": the blob really went up in several parts.
        assert int(info.etag.rsplit("-", 1)[1]) >= 5
    # A range across the first part boundary returns exactly those bytes.
    first_two = b"".join(c for _, c in zip(range(9), chunks(BIG), strict=False))
    with storage.open(key, 8 * MiB - 10, 8 * MiB + 10) as reader:
        assert reader.read() == first_two[8 * MiB - 10 : 8 * MiB + 10]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 1), (10, 20), (999, None), (999, 1000), (500, 5000), (1000, None), (1000, 1000),
     (0, 0), (7, 7)],
)
def test_byte_ranges(backend, start, end):
    data = bytes(range(256)) * 3 + b"tail" * 58  # 1000 bytes
    key = write_blob(backend.storage, data)
    with backend.storage.open(key, start, end) as reader:
        assert reader.read() == data[start:end]


def test_any_range_reads_like_a_slice(backend):
    data = bytes(random.Random(4).randbytes(1500))
    key = write_blob(backend.storage, data)

    @settings(max_examples=40, deadline=None)
    @given(start=st.integers(-2, 1600), end=st.none() | st.integers(-2, 1600))
    def check(start: int, end: int | None) -> None:
        if start < 0 or start > len(data) or (end is not None and end < start):
            with pytest.raises(InvalidRange):
                backend.storage.open(key, start, end)
            return
        with backend.storage.open(key, start, end) as reader:
            assert reader.read() == data[start:end]

    check()


def test_reader_reads_in_pieces(backend):
    data = b"0123456789" * 1000
    key = write_blob(backend.storage, data)
    with backend.storage.open(key, 5, 9005) as reader:
        pieces = [reader.read(333) for _ in range(29)]  # 27 full, 9 bytes, then EOF
    assert b"".join(pieces) == data[5:9005]
    assert pieces[-1] == b""


@pytest.mark.parametrize(("start", "end"), [(1001, None), (2000, 3000), (-1, None), (10, 5)])
def test_bad_ranges_are_refused(backend, start, end):
    key = write_blob(backend.storage, b"x" * 1000)
    with pytest.raises(InvalidRange):
        backend.storage.open(key, start, end)


def test_missing_blob(backend):
    key = blob_key("sha512-" + "0" * 128)
    storage = backend.storage
    assert not storage.exists(key)
    for call in (lambda: storage.open(key), lambda: storage.open(key, 5, 10),
                 lambda: storage.open(key, 3, 3), lambda: storage.stat(key)):
        with pytest.raises(BlobNotFound) as raised:
            call()
        assert raised.value.key == key and key in str(raised.value)
    assert storage.delete(key) is False


def test_empty_blob(backend):
    key = write_blob(backend.storage, b"")
    assert backend.storage.stat(key).size == 0
    assert backend.storage.open(key).read() == b""
    assert backend.storage.open(key, 0, 10).read() == b""


def test_stat(backend):
    before = datetime.now(UTC) - timedelta(seconds=5)
    key = write_blob(backend.storage, b"stat me" * 100)
    info = backend.storage.stat(key)
    assert (info.key, info.size) == (key, 700)
    assert before <= info.mtime <= datetime.now(UTC) + timedelta(seconds=5)
    assert info.mtime.tzinfo is not None
    assert info.etag


def test_abort_leaves_nothing(backend):
    upload = backend.storage.upload()
    upload.write(b"abandoned" * 100_000)
    assert backend.contents()[1], "an open upload has a temporary somewhere"
    backend.storage.abort(upload)
    assert upload.state == "aborted"
    assert backend.contents() == (set(), [])
    with pytest.raises(UploadClosed):
        upload.write(b"more")
    with pytest.raises(UploadClosed):
        backend.storage.commit(upload, "blobs/never")
    upload.abort()  # twice is harmless
    assert not backend.storage.exists("blobs/never")


def test_exception_mid_stream_leaves_nothing(backend):
    with pytest.raises(RuntimeError, match="client went away"):
        with backend.storage.upload() as upload:
            for count, chunk in enumerate(chunks(20 * MiB)):
                upload.write(chunk)
                if count == 12:
                    raise RuntimeError("client went away")
    assert upload.state == "aborted"
    assert backend.contents() == (set(), [])


def test_leaving_the_block_without_commit_aborts(backend):
    with backend.storage.upload() as upload:
        upload.write(b"validated but rejected")
    assert upload.state == "aborted"
    assert backend.contents() == (set(), [])


def test_a_forgotten_upload_removes_its_temporary(backend):
    upload = backend.storage.upload()
    upload.write(b"the caller never commits nor aborts")
    assert backend.contents()[1]
    del upload
    gc.collect()
    assert backend.contents() == (set(), [])


def test_read_back_then_keep_writing(backend):
    with backend.storage.upload() as upload:
        upload.write(b"first ")
        with upload.open_for_read() as reader:
            assert reader.read() == b"first "
        upload.write(b"second")
        with upload.open_for_read() as reader:
            assert reader.read() == b"first second"
        key = upload.commit("blobs/plain/first-second")
    assert backend.storage.open(key.key).read() == b"first second"


def test_readers_never_see_a_partial_blob(backend):
    """While a commit is under way, a key is either absent or complete."""
    total = 24 * MiB
    key = blob_key(sha512_of_chunks(total, seed=11))
    seen: set[int | None] = set()
    committed = threading.Event()

    def watch() -> None:
        while not committed.is_set():
            try:
                seen.add(backend.storage.stat(key).size)
            except BlobNotFound:
                seen.add(None)

    with backend.storage.upload() as upload:
        for chunk in chunks(total, seed=11):
            upload.write(memoryview(chunk))
        assert upload.tell() == total
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            backend.storage.commit(upload, key)
        finally:
            committed.set()
            watcher.join()
    assert None in seen and seen <= {None, total}
    assert _hash_reader(backend.storage.open(key)) == (sha512_of_chunks(total, seed=11), total)


def test_concurrent_identical_commits(backend):
    total, workers = 10 * MiB, 6
    key = blob_key(sha512_of_chunks(total, seed=7))
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            with backend.storage.upload() as upload:
                for chunk in chunks(total, seed=7):
                    upload.write(chunk)
                barrier.wait(timeout=60)  # all commit at the same moment
                backend.storage.commit(upload, key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _hash_reader(backend.storage.open(key)) == (sha512_of_chunks(total, seed=7), total)
    assert backend.contents() == ({key}, [])


def test_commit_of_different_content_to_a_used_key_is_refused(backend):
    key = "blobs/fixed/name"
    with backend.storage.upload() as upload:
        upload.write(b"original")
        backend.storage.commit(upload, key)
    with backend.storage.upload() as upload:
        upload.write(b"something else entirely")
        with pytest.raises(KeyConflict):
            backend.storage.commit(upload, key)
        assert upload.state == "open"  # the caller decides; the block's exit aborts
    assert backend.storage.open(key).read() == b"original"
    assert backend.contents() == ({key}, [])


def test_delete(backend):
    keep = write_blob(backend.storage, b"keep")
    gone = write_blob(backend.storage, b"gone")
    assert backend.storage.delete(gone) is True
    assert backend.storage.delete(gone) is False
    assert not backend.storage.exists(gone)
    with pytest.raises(BlobNotFound):
        backend.storage.open(gone)
    assert list(backend.storage.iter_keys()) == [keep]
    assert backend.contents() == ({keep}, [])


def test_iter_keys_order_prefix_and_no_temporaries(backend):
    keys = ["a-b", "a/b", "a/c/d", "a0", "blobs/sha512/00/x", "blobs/sha512/ff/y", "z"]
    for key in reversed(keys):
        with backend.storage.upload() as upload:
            upload.write(key.encode())
            backend.storage.commit(upload, key)
    with backend.storage.upload() as pending:
        pending.write(b"not yet visible")
        assert list(backend.storage.iter_keys()) == sorted(keys)
        assert list(backend.storage.iter_keys("a/")) == ["a/b", "a/c/d"]
        assert list(backend.storage.iter_keys("a")) == ["a-b", "a/b", "a/c/d", "a0"]
        assert list(backend.storage.iter_keys("blobs/sha512/f")) == ["blobs/sha512/ff/y"]
        assert list(backend.storage.iter_keys("nothing/")) == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "../escape", "a/../../b", "a//b", ".uploads/x", "a/.hidden", "a/", "sp ace"]
)
def test_bad_keys_are_refused_everywhere(backend, key):
    storage = backend.storage
    with storage.upload() as upload:
        upload.write(b"data")
        with pytest.raises(InvalidKey):
            storage.commit(upload, key)
    for call in (storage.open, storage.stat, storage.exists, storage.delete):
        with pytest.raises(InvalidKey):
            call(key)
    assert backend.contents() == (set(), [])


def test_upload_of_another_storage_is_refused(backend, tmp_path):
    from registry.server.storage import LocalStorage

    other = LocalStorage(tmp_path / "other")
    with other.upload() as upload:
        upload.write(b"elsewhere")
        with pytest.raises(StorageError, match="belongs to"):
            backend.storage.commit(upload, "blobs/elsewhere")
    assert backend.contents() == (set(), [])


def test_memory_stays_bounded_for_a_big_blob(backend):
    """Writing, committing and reading 40 MiB keeps Python's peak far below the blob size."""
    tracemalloc.start()
    try:
        with backend.storage.upload() as upload:
            digest = _write_big(upload, seed=3)
            with upload.open_for_read() as readback:
                _hash_reader(readback)
            _, write_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            backend.storage.commit(upload, blob_key(digest))
        _, commit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert _hash_reader(backend.storage.open(blob_key(digest))) == (digest, BIG)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # botocore reads about 2 MiB per part-sending thread (the test backend uses 2 threads),
    # whatever the blob's size; the reads use 1 MiB buffers.
    limit = BIG // 4
    assert write_peak < limit, f"writing peaked at {write_peak} bytes"
    assert commit_peak < limit, f"commit peaked at {commit_peak} bytes"
    assert read_peak < limit, f"reading peaked at {read_peak} bytes"


def test_stale_upload_cleanup(backend):
    stale = backend.storage.upload()
    stale.write(b"left by a crashed worker")
    stale.flush()
    # Its process dies: the kernel drops the spool file's lock (here: released by hand).
    fcntl.flock(stale._file.fileno(), fcntl.LOCK_UN)  # type: ignore[union-attr]
    make_old(stale.temp_path, 3)
    with backend.storage.upload() as fresh:
        fresh.write(b"still being written")
        make_old(fresh.temp_path, 3 * 3600)  # old but alive: a slow upload is never reclaimed
        assert backend.storage.cleanup_stale_uploads(timedelta(hours=1), dry_run=True) == 1
        assert len(backend.contents()[1]) == 2
        assert backend.storage.cleanup_stale_uploads(timedelta(hours=1)) == 1
        assert len(backend.contents()[1]) == 1  # only the fresh upload's temporary
        fresh.write(b", and finished")
        info = fresh.commit("blobs/fresh")
    assert info.size == len(b"still being written, and finished")
    assert backend.contents() == ({"blobs/fresh"}, [])


def test_local_path_and_presigned_url(backend):
    data = b"fetch me directly" * 1000
    key = write_blob(backend.storage, data)
    if backend.name == "local":
        assert backend.storage.local_path(key).read_bytes() == data
        assert backend.storage.presigned_url(key) is None
        with pytest.raises(BlobNotFound):
            backend.storage.local_path(blob_key("sha256-" + "1" * 64))
        return
    assert backend.storage.local_path(key) is None
    url = backend.storage.presigned_url(key, timedelta(minutes=5), content_type="application/x-aci")
    assert url.startswith("http://127.0.0.1:")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    partial = requests.get(url, headers={"Range": "bytes=3-9"}, timeout=10)
    assert (partial.status_code, partial.content) == (206, data[3:10])
    # moto honours neither expiry nor response overrides, so check what S3 would read.
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-type"] == ["application/x-aci"]
    assert query["X-Amz-Signature"][0]
    with pytest.raises(ValueError, match="lifetime"):
        backend.storage.presigned_url(key, timedelta(days=8))
