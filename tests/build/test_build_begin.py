"""`begin` and `end`: what a build starts from, and the errors around the build context."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from build_helpers import Acbuild, open_aci

from registry.build import Builder, BuildInProgress


def test_empty_begin_has_acbuild_defaults(acb: Acbuild) -> None:
    acb("begin")
    manifest = acb.manifest()
    assert manifest["acKind"] == "ImageManifest"
    assert manifest["name"] == "acbuild-unnamed"
    labels = {label["name"]: label["value"] for label in manifest["labels"]}
    assert labels == {"os": "linux", "arch": "amd64"}  # the host, in appc's names
    assert manifest["app"]["user"] == "0" and manifest["app"]["group"] == "0"
    assert acb.rootfs.is_dir() and list(acb.rootfs.iterdir()) == []


def test_begin_while_a_build_is_in_progress_fails_and_keeps_it(acb: Acbuild) -> None:
    acb("begin")
    acb("set-name", "kept")
    error = acb.fails("begin")
    assert "begin: build already in progress in this working dir" in error
    assert acb.manifest()["name"] == "kept"


def test_begin_from_directory_copies_it_as_rootfs(acb: Acbuild, tmp_path: Path,
                                                  actool_validate) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hi\n")
    (tree / "bin").mkdir()
    (tree / "bin" / "tool").write_text("#!/bin/sh\n")
    (tree / "bin" / "tool").chmod(0o755)
    (tree / "bin" / "alias").symlink_to("tool")
    acb("begin", str(tree))
    assert (acb.rootfs / "etc" / "motd").read_text() == "hi\n"
    assert os.stat(acb.rootfs / "bin" / "tool").st_mode & 0o777 == 0o755
    assert os.readlink(acb.rootfs / "bin" / "alias") == "tool"
    assert acb.manifest()["name"] == "acbuild-unnamed"
    acb("set-name", "from-dir")
    acb("write", "dir.aci")
    actool_validate(acb.work / "dir.aci")
    image = open_aci(acb.work / "dir.aci")
    assert image.members["rootfs/bin/alias"].issym()
    assert image.members["rootfs/bin/tool"].mode & 0o777 == 0o755


def _tarball(path: Path, entries: dict[str, bytes | None], *, mode: str = "w:gz") -> Path:
    """Entries: name -> file bytes, or None for a directory."""
    with tarfile.open(path, mode) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_begin_from_rootfs_tarball(acb: Acbuild, tmp_path: Path, mode: str,
                                   actool_validate) -> None:
    tarball = _tarball(tmp_path / "rootfs.tar", {"./": None, "./etc/": None,
                                                  "./etc/hostname": b"box\n"}, mode=mode)
    result = acb("begin", str(tarball))
    assert "assuming build is beginning with a tar of a rootfs" in result.stderr
    assert (acb.rootfs / "etc" / "hostname").read_bytes() == b"box\n"
    assert acb.manifest()["name"] == "acbuild-unnamed"
    acb("set-name", "from-tarball")
    acb("write", "tarball.aci")
    actool_validate(acb.work / "tarball.aci")
    assert open_aci(acb.work / "tarball.aci").contents["rootfs/etc/hostname"] == b"box\n"


def test_begin_from_hostile_rootfs_tarball_leaves_no_build(acb: Acbuild, tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "evil.tar", {"../escaped": b"x"})
    acb.fails("begin", str(tarball))
    assert not (acb.work / ".acbuild").exists()
    assert not (tmp_path / "escaped").exists()
    acb("begin")  # nothing half-begun stands in the way


def test_begin_from_aci_keeps_its_manifest_and_files(acb: Acbuild, tmp_path: Path,
                                                     actool_validate) -> None:
    acb("begin")
    acb("set-name", "example.com/base")
    acb("label", "add", "version", "1.0")
    (tmp_path / "data.txt").write_text("payload")
    acb("copy", str(tmp_path / "data.txt"), "/srv/data.txt")
    acb("write", str(tmp_path / "base.aci"))
    acb("end")

    acb("begin", str(tmp_path / "base.aci"))
    manifest = acb.manifest()
    assert manifest["name"] == "example.com/base"
    assert {"name": "version", "value": "1.0"} in manifest["labels"]
    assert (acb.rootfs / "srv" / "data.txt").read_text() == "payload"
    acb("set-name", "example.com/derived")
    acb("write", str(tmp_path / "derived.aci"))
    actool_validate(tmp_path / "derived.aci")
    derived = open_aci(tmp_path / "derived.aci")
    assert derived.contents["rootfs/srv/data.txt"] == b"payload"


def test_begin_from_missing_path_fails_cleanly(acb: Acbuild) -> None:
    error = acb.fails("begin", "./no-such-thing")
    assert "no such file or directory: ./no-such-thing" in error
    assert not (acb.work / ".acbuild").exists()


def test_begin_from_a_file_that_is_not_a_tarball(acb: Acbuild, tmp_path: Path) -> None:
    junk = tmp_path / "junk.aci"
    junk.write_bytes(b"not a tar archive at all" * 50)
    error = acb.fails("begin", str(junk))
    assert "junk.aci" in error
    assert not (acb.work / ".acbuild").exists()


def test_begin_from_aci_with_invalid_manifest_fails_cleanly(acb: Acbuild, tmp_path: Path) -> None:
    bad = _tarball(tmp_path / "bad.aci", {"manifest": json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "Not Valid"}).encode(),
        "rootfs": None})
    acb.fails("begin", str(bad))
    assert not (acb.work / ".acbuild").exists()


def test_end_removes_the_build_and_end_twice_fails(acb: Acbuild) -> None:
    acb("begin")
    acb("end")
    assert not (acb.work / ".acbuild").exists()
    error = acb.fails("end")
    assert 'no build in progress in this working dir - try "acbuild begin"' in error


@pytest.mark.parametrize("command", [
    ["set-name", "x"], ["copy", "a", "/b"], ["copy-to-dir", "a", "/b"], ["set-exec", "--", "/x"],
    ["set-working-directory", "/"], ["set-user", "1"], ["set-group", "1"],
    ["environment", "add", "A", "b"], ["environment", "rm", "A"], ["label", "add", "a", "b"],
    ["label", "rm", "a"], ["annotation", "add", "a", "b"], ["annotation", "rm", "a"],
    ["port", "add", "http", "tcp", "80"], ["port", "rm", "http"], ["mount", "add", "m", "/m"],
    ["mount", "rm", "m"], ["isolator", "rm", "resource/cpu"], ["dependency", "add", "dep"],
    ["dependency", "rm", "dep"], ["cat-manifest"], ["write", "out.aci"], ["end"],
])
def test_commands_outside_a_build_give_the_begin_hint(acb: Acbuild, command: list[str]) -> None:
    error = acb.fails(*command)
    assert 'no build in progress in this working dir - try "acbuild begin"' in error
    assert not (acb.work / ".acbuild").exists()
    assert not (acb.work / "out.aci").exists()


def test_work_path_chooses_the_build_directory(acb: Acbuild, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    acb("--work-path", str(elsewhere), "begin")
    acb("--work-path", str(elsewhere), "set-name", "placed")
    assert (elsewhere / ".acbuild" / "currentaci" / "manifest").is_file()
    assert not (acb.work / ".acbuild").exists()
    acb.fails("set-name", "x")  # the default work path (cwd) has no build
    acb("--work-path", str(elsewhere), "end")
    assert not (elsewhere / ".acbuild").exists()


def test_work_path_must_exist(acb: Acbuild, tmp_path: Path) -> None:
    error = acb.fails("--work-path", str(tmp_path / "missing"), "begin")
    assert "is not a directory" in error


def test_library_begin_raises_build_in_progress(tmp_path: Path) -> None:
    builder = Builder(tmp_path)
    builder.begin()
    with pytest.raises(BuildInProgress):
        builder.begin()


def test_begin_from_directory_refuses_special_files(acb: Acbuild, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "pipe")
    error = acb.fails("begin", str(tree))
    assert "pipe" in error and "not a regular file" in error
    assert not (acb.work / ".acbuild").exists()
    assert stat.S_ISFIFO(os.lstat(tree / "pipe").st_mode)


def test_begin_from_the_working_directory_itself_is_refused(acb: Acbuild) -> None:
    (acb.work / "file").write_text("x")
    error = acb.fails("begin", ".")
    assert "contains the build context" in error
    assert not (acb.work / ".acbuild").exists()


def test_begin_from_rootfs_tarball_keeps_links(acb: Acbuild, tmp_path: Path) -> None:
    tarball = tmp_path / "links.tar"
    with tarfile.open(tarball, "w") as archive:
        data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("./bin/a")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
        hard = tarfile.TarInfo("./bin/b")
        hard.type, hard.linkname = tarfile.LNKTYPE, "./bin/a"
        archive.addfile(hard)
        soft = tarfile.TarInfo("./bin/c")
        soft.type, soft.linkname = tarfile.SYMTYPE, "a"
        archive.addfile(soft)
    acb("begin", str(tarball))
    assert os.stat(acb.rootfs / "bin/a").st_ino == os.stat(acb.rootfs / "bin/b").st_ino
    assert os.readlink(acb.rootfs / "bin/c") == "a"


def test_begin_from_rootfs_tarball_refuses_absolute_names(acb: Acbuild, tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "abs.tar", {"/etc/passwd": b"root:x:0:0::/:/bin/sh\n"})
    assert "absolute path" in acb.fails("begin", str(tarball))
    assert not (acb.work / ".acbuild").exists()
