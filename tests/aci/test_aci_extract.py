"""extract_aci: the tree comes back as written (modes, links, hard links), atomically, and
the destination is only ever replaced whole."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from acitrees import MANIFEST, describe, make_tree, make_writable
from components import need_root

from registry.aci import ArchiveError, ImageManifest, extract_aci, read_aci, write_aci


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    rootfs = make_tree(tmp_path / "source" / "rootfs")
    output = tmp_path / "image.aci"
    write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output)
    return output


@pytest.fixture
def source_tree(image: Path, tmp_path: Path) -> dict:
    tree = describe(tmp_path / "source" / "rootfs")
    make_writable(tmp_path / "source")
    return tree


def test_round_trip_preserves_the_tree(image: Path, source_tree: dict, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    info = extract_aci(image, dest)
    try:
        assert info.image_id == read_aci(image).image_id
        assert sorted(p.name for p in dest.iterdir()) == ["manifest", "rootfs"]
        assert ImageManifest.from_json((dest / "manifest").read_bytes()) == info.manifest
        assert describe(dest / "rootfs") == source_tree
        data = dest / "rootfs" / "data"
        assert (data / "random.bin").stat().st_ino == (data / "hardlink.bin").stat().st_ino
        assert (dest / "rootfs" / "etc" / "config").stat().st_mtime == 1_600_000_000
        assert os.readlink(dest / "rootfs" / "bin" / "sh") == "/bin/hello"
        assert stat.S_IMODE((dest / "rootfs" / "readonly").stat().st_mode) == 0o555
        assert stat.S_IMODE((dest / "rootfs" / "sticky").stat().st_mode) == 0o1777
    finally:
        make_writable(dest)


def test_rootfs_only(image: Path, source_tree: dict, tmp_path: Path) -> None:
    dest = tmp_path / "rootfs-only"
    extract_aci(image, dest, rootfs_only=True)
    try:
        assert describe(dest) == source_tree
        assert not (dest / "manifest").exists()
    finally:
        make_writable(dest)


def test_empty_existing_destination_is_replaced(image: Path, tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    extract_aci(image, dest)
    assert (dest / "rootfs" / "bin" / "hello").read_bytes().startswith(b"#!/bin/sh")
    make_writable(dest)


@pytest.mark.parametrize("occupant", ["file", "non-empty directory"])
def test_occupied_destination_is_refused_untouched(image: Path, tmp_path: Path,
                                                   occupant: str) -> None:
    dest = tmp_path / "occupied"
    if occupant == "file":
        dest.write_text("keep me")
    else:
        dest.mkdir()
        (dest / "keep").write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ArchiveError) as caught:
        extract_aci(image, dest)
    assert caught.value.reason == "dest-exists"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (dest if occupant == "file" else dest / "keep").read_text() == "keep me"


def test_extracts_from_a_file_object(image: Path, tmp_path: Path) -> None:
    with open(image, "rb") as handle:
        extract_aci(io.BufferedReader(handle), tmp_path / "from-stream")  # type: ignore[arg-type]
    assert (tmp_path / "from-stream" / "manifest").is_file()
    make_writable(tmp_path / "from-stream")


def _aci_with(tmp_path: Path, member: tarfile.TarInfo) -> Path:
    manifest = ImageManifest.from_dict(MANIFEST).to_json()
    path = tmp_path / "special.aci"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("manifest")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        root = tarfile.TarInfo("rootfs")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(root)
        archive.addfile(member)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes need root")
def test_devices_when_allowed(tmp_path: Path) -> None:
    device = tarfile.TarInfo("rootfs/null")
    device.type, device.devmajor, device.devminor, device.mode = tarfile.CHRTYPE, 1, 3, 0o666
    aci = _aci_with(tmp_path, device)
    extract_aci(aci, tmp_path / "with-devices", allow_devices=True)
    created = (tmp_path / "with-devices" / "rootfs" / "null").lstat()
    assert stat.S_ISCHR(created.st_mode) and os.major(created.st_rdev) == 1
    with pytest.raises(ArchiveError) as caught:
        extract_aci(aci, tmp_path / "without")
    assert caught.value.reason == "device-node"
    assert not (tmp_path / "without").exists()


def test_fifo_when_allowed(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("rootfs/pipe")
    fifo.type, fifo.mode = tarfile.FIFOTYPE, 0o640
    extract_aci(_aci_with(tmp_path, fifo), tmp_path / "fifo", allow_devices=True)
    created = (tmp_path / "fifo" / "rootfs" / "pipe").lstat()
    assert stat.S_ISFIFO(created.st_mode) and stat.S_IMODE(created.st_mode) == 0o640


def test_ownership_restored_as_root(tmp_path: Path) -> None:
    need_root("chown")
    owned = tarfile.TarInfo("rootfs/owned")
    owned.uid, owned.gid, owned.mode = 4321, 8765, 0o640
    extract_aci(_aci_with(tmp_path, owned), tmp_path / "owned")
    info = (tmp_path / "owned" / "rootfs" / "owned").stat()
    assert (info.st_uid, info.st_gid) == (4321, 8765)


def _aci_of(tmp_path: Path, members: list[tarfile.TarInfo], name: str) -> Path:
    manifest = ImageManifest.from_dict(MANIFEST).to_json()
    path = tmp_path / f"{name}.aci"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("manifest")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        for member in members:
            archive.addfile(member, io.BytesIO(b"data") if member.isreg() else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


def test_implicit_parents_and_late_directory_entries(tmp_path: Path) -> None:
    """Parents no entry describes are created; a directory entry after its children still
    sets the directory's mode."""
    aci = _aci_of(tmp_path, [_entry("rootfs/a/b/c"), _entry("rootfs", tarfile.DIRTYPE, 0o755),
                             _entry("rootfs/a", tarfile.DIRTYPE, 0o700)], "implicit")
    read_aci(aci)
    extract_aci(aci, tmp_path / "out")
    assert (tmp_path / "out" / "rootfs" / "a" / "b" / "c").read_bytes() == b"data"
    assert stat.S_IMODE((tmp_path / "out" / "rootfs" / "a").stat().st_mode) == 0o700


def test_file_where_a_directory_was_implied_is_refused(tmp_path: Path) -> None:
    aci = _aci_of(tmp_path, [_entry("rootfs", tarfile.DIRTYPE, 0o755), _entry("rootfs/a/b"),
                             _entry("rootfs/a")], "clash")
    for attempt in (lambda: read_aci(aci), lambda: extract_aci(aci, tmp_path / "out")):
        with pytest.raises(ArchiveError) as caught:
            attempt()
        assert caught.value.reason == "bad-parent"
    assert not (tmp_path / "out").exists()
