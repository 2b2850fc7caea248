"""write_aci: every image passes appc's actool, and reproducible mode makes the image ID a
function of the content alone."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from acitrees import MANIFEST, make_tree, make_writable
from components import need_root

from registry.aci import (
    ACIError,
    ImageManifest,
    ManifestError,
    read_aci,
    write_aci,
)


@pytest.fixture
def rootfs(tmp_path: Path):
    tree = make_tree(tmp_path / "rootfs")
    yield tree
    make_writable(tree)


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_written_images_pass_actool_and_read_back(rootfs: Path, tmp_path: Path,
                                                  compression: str, actool_validate) -> None:
    output = tmp_path / f"image-{compression}.aci"
    image_id = write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output,
                         compression=compression)
    actool_validate(output)
    info = read_aci(output)
    assert info.image_id == image_id
    assert info.compression == compression
    assert oct(output.stat().st_mode & 0o777) == oct(0o644)


def test_minimal_image_passes_actool(tmp_path: Path, actool_validate) -> None:
    (tmp_path / "empty").mkdir()
    output = tmp_path / "minimal.aci"
    write_aci({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/min"},
              tmp_path / "empty", output)
    actool_validate(output)


def test_same_content_same_image_id(rootfs: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    manifest = ImageManifest.from_dict(MANIFEST)
    first = write_aci(manifest, rootfs, tmp_path / "first.aci")
    for path in [rootfs / "etc" / "config", rootfs / "bin"]:
        os.utime(path, (1_600_000_000, 1_600_000_000))  # touching changes nothing
    second = write_aci(manifest, rootfs, tmp_path / "second.aci")
    assert first == second
    assert (tmp_path / "first.aci").read_bytes() == (tmp_path / "second.aci").read_bytes()
    (rootfs / "etc" / "config").write_text("changed\n")
    assert write_aci(manifest, rootfs, tmp_path / "third.aci") != first


def test_reproducible_headers(rootfs: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    output = tmp_path / "image.aci"
    epoch_id = write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output)
    raw = output.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08" and raw[3] & 0x08 == 0  # gzip, no file name stored
    assert raw[4:8] == bytes(4)                               # gzip header mtime 0
    with tarfile.open(output) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names[:2] == ["manifest", "rootfs"]
    assert names == ["manifest", "rootfs", *sorted(names[2:], key=lambda n: n.split("/"))]
    assert {member.mtime for member in members} == {1_700_000_000}
    assert {(member.uid, member.gid, member.uname, member.gname) for member in members} \
        == {(0, 0, "", "")}
    # Sorted order meets hardlink.bin first: it holds the data, random.bin links to it.
    hard = next(member for member in members if member.name.endswith("random.bin"))
    assert hard.islnk() and hard.linkname == "rootfs/data/hardlink.bin"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    assert write_aci(ImageManifest.from_dict(MANIFEST), rootfs, tmp_path / "b.aci") != epoch_id


def test_non_reproducible_mode_keeps_mtimes(rootfs: Path, tmp_path: Path) -> None:
    os.utime(rootfs / "etc" / "config", (1_234_567_890, 1_234_567_890))
    output = tmp_path / "image.aci"
    write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output, reproducible=False)
    with tarfile.open(output) as archive:
        assert archive.getmember("rootfs/etc/config").mtime == 1_234_567_890


def test_preserve_ownership(rootfs: Path, tmp_path: Path) -> None:
    need_root("chown")
    os.chown(rootfs / "etc" / "secret", 1234, 5678)
    output = tmp_path / "image.aci"
    write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output, preserve_ownership=True)
    with tarfile.open(output) as archive:
        member = archive.getmember("rootfs/etc/secret")
    assert (member.uid, member.gid) == (1234, 5678)


def test_writes_to_a_file_object(rootfs: Path) -> None:
    buffer = io.BytesIO()
    image_id = write_aci(ImageManifest.from_dict(MANIFEST), rootfs, buffer, compression="xz")
    buffer.seek(0)
    assert read_aci(buffer).image_id == image_id


def test_manifest_bytes_are_kept_as_given(rootfs: Path, tmp_path: Path) -> None:
    text = ImageManifest.from_dict(MANIFEST).to_json(pretty=True)
    info_id = write_aci(text, rootfs, tmp_path / "pretty.aci")
    info = read_aci(tmp_path / "pretty.aci")
    assert info.manifest_bytes == text and info.image_id == info_id


@pytest.mark.parametrize(("manifest", "rootfs_name", "compression", "error", "message"), [
    ({**MANIFEST, "name": "Bad Name"}, "rootfs", "gzip", ManifestError, "name:"),
    (b"{not json", "rootfs", "gzip", ManifestError, "invalid JSON"),
    (MANIFEST, "missing", "gzip", ACIError, "rootfs is not a directory"),
    (MANIFEST, "rootfs", "zstd", ACIError, "compression: 'zstd'"),
])
def test_bad_input_leaves_nothing(rootfs: Path, tmp_path: Path, manifest, rootfs_name: str,
                                  compression: str, error: type, message: str) -> None:
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    with pytest.raises(error, match=message):
        write_aci(manifest, rootfs.parent / rootfs_name, output_dir / "image.aci",
                  compression=compression)
    assert list(output_dir.iterdir()) == []


def test_failed_write_keeps_the_previous_file(rootfs: Path, tmp_path: Path) -> None:
    output = tmp_path / "image.aci"
    output.write_bytes(b"previous")
    with pytest.raises(ManifestError):
        write_aci({**MANIFEST, "labels": [{"name": "os", "value": "plan9"}]}, rootfs, output)
    assert output.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.aci", "rootfs"]


def test_bad_source_date_epoch(rootfs: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ACIError, match="SOURCE_DATE_EPOCH"):
        write_aci(MANIFEST, rootfs, tmp_path / "image.aci")
    assert not (tmp_path / "image.aci").exists()
