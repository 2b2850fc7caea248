"""What only the local backend does: rename-commits on one filesystem, files for sendfile."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import missing, need_root
from storage_helpers import MiB, chunks, write_blob

from registry.server.storage import (
    KeyConflict,
    LocalStorage,
    S3Storage,
    StorageError,
    iter_chunks,
)
from registry.server.storage.base import LimitedReader


def test_commit_is_a_rename_on_the_same_filesystem(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    with storage.upload() as upload:
        upload.write(b"renamed, not copied")
        temp = upload.temp_path
        assert temp.parent == storage.root / ".uploads"
        inode = temp.stat().st_ino
        storage.commit(upload, "blobs/renamed")
    assert not temp.exists()
    final = storage.local_path("blobs/renamed")
    assert final.stat().st_ino == inode
    assert final.read_bytes() == b"renamed, not copied"


@pytest.mark.parametrize(("first", "second"), [("a", "a/b"), ("a/b", "a")])
def test_a_key_cannot_be_both_file_and_directory(tmp_path, first, second):
    storage = LocalStorage(tmp_path)
    with storage.upload() as upload:
        upload.write(b"first")
        storage.commit(upload, first)
    with storage.upload() as upload:
        upload.write(b"second")
        with pytest.raises(KeyConflict, match="clashes with another key"):
            storage.commit(upload, second)
        assert upload.state == "open"
    assert list(storage.iter_keys()) == [first]
    assert list((tmp_path / ".uploads").iterdir()) == []


def test_a_reader_survives_delete(tmp_path):
    storage = LocalStorage(tmp_path)
    key = write_blob(storage, b"still streaming" * 10_000)
    with storage.open(key) as reader:
        first = reader.read(10)
        assert storage.delete(key)
        rest = reader.read()
    assert first + rest == b"still streaming" * 10_000


def test_limited_reader_reports_a_short_source():
    reader = LimitedReader(io.BytesIO(b"only ten b"), 15, name="'blobs/short'")
    with pytest.raises(StorageError, match="'blobs/short' ended 5 bytes early"):
        io.BufferedReader(reader).read()


def test_iter_chunks_closes_the_reader(tmp_path):
    storage = LocalStorage(tmp_path)
    key = write_blob(storage, b"z" * (3 * MiB + 1))
    reader = storage.open(key)
    assert [len(c) for c in iter_chunks(reader)] == [MiB, MiB, MiB, 1]
    assert reader.closed


@pytest.fixture
def tiny_filesystem(tmp_path) -> Iterator[Path]:
    """A 4 MiB tmpfs, to run out of space for real."""
    need_root("mounting a tmpfs")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.root
@pytest.mark.parametrize("where", ["local root", "s3 spool"])
def test_disk_full_mid_upload_leaves_nothing(tiny_filesystem, where):
    if where == "local root":
        storage = LocalStorage(tiny_filesystem / "root")
    else:
        storage = S3Storage("never-contacted", spool_dir=tiny_filesystem / "spool", check=False)
    with pytest.raises(OSError) as raised:
        with storage.upload() as upload:
            for chunk in chunks(8 * MiB):
                upload.write(chunk)
            upload.flush()
    assert raised.value.errno == 28  # ENOSPC
    leftovers = [p for p in tiny_filesystem.rglob("*") if p.is_file()]
    assert leftovers == []
