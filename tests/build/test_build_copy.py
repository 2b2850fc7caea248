"""`copy` and `copy-to-dir`: files land where the image will see them, and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from build_helpers import Acbuild


@pytest.fixture
def started(acb: Acbuild) -> Acbuild:
    acb("--no-history", "begin")
    return acb


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A small host tree: file.txt, run.sh (executable), tree/{a.txt, sub/b.txt, link -> a.txt}."""
    root = tmp_path / "host"
    (root / "tree" / "sub").mkdir(parents=True)
    (root / "file.txt").write_text("file")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o750)
    (root / "tree" / "a.txt").write_text("a")
    (root / "tree" / "sub" / "b.txt").write_text("b")
    (root / "tree" / "link").symlink_to("a.txt")
    return root


def test_copy_file_creates_parents_and_keeps_mode(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "run.sh"), "/usr/local/bin/run")
    target = started.rootfs / "usr" / "local" / "bin" / "run"
    assert target.read_text() == "#!/bin/sh\necho hi\n"
    assert target.stat().st_mode & 0o777 == 0o750


def test_copy_relative_source_from_cwd(started: Acbuild, host: Path) -> None:
    (started.work / "local.txt").write_text("here")
    started("copy", "local.txt", "/local.txt")
    assert (started.rootfs / "local.txt").read_text() == "here"


def test_copy_file_overwrites_file(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "file.txt"), "/x")
    started("copy", str(host / "run.sh"), "/x")
    assert (started.rootfs / "x").read_text().startswith("#!/bin/sh")


def test_copy_directory_becomes_destination_and_merges(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "tree"), "/opt/tree")
    assert (started.rootfs / "opt/tree/a.txt").read_text() == "a"
    assert (started.rootfs / "opt/tree/sub/b.txt").read_text() == "b"
    assert os.readlink(started.rootfs / "opt/tree/link") == "a.txt"
    (host / "tree" / "a.txt").write_text("A2")
    (host / "tree" / "new.txt").write_text("new")
    started("copy", str(host / "tree"), "/opt/tree")
    assert (started.rootfs / "opt/tree/a.txt").read_text() == "A2"
    assert (started.rootfs / "opt/tree/new.txt").read_text() == "new"
    assert (started.rootfs / "opt/tree/sub/b.txt").read_text() == "b"


def test_copy_refuses_trailing_separator(started: Acbuild, host: Path) -> None:
    error = started.fails("copy", str(host / "file.txt"), "/etc/")
    assert "trailing path separator" in error and "copy-to-dir" in error
    assert not (started.rootfs / "etc").exists()


def test_copy_missing_source(started: Acbuild, host: Path) -> None:
    error = started.fails("copy", str(host / "missing"), "/x")
    assert error.startswith("copy: no such file or directory")
    assert list(started.rootfs.iterdir()) == []


def test_copy_file_onto_directory_fails(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "tree"), "/d")
    error = started.fails("copy", str(host / "file.txt"), "/d")
    assert "is a directory" in error
    assert (started.rootfs / "d" / "a.txt").read_text() == "a"


def test_copy_through_absolute_symlink_stays_in_rootfs(started: Acbuild, host: Path,
                                                       tmp_path: Path) -> None:
    """`/etc -> /outside` in the image means rootfs/outside, never the host's /outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (started.rootfs / "etc").symlink_to(str(outside))  # absolute: resolves on the host
    started("copy", str(host / "file.txt"), "/etc/conf")
    assert not (outside / "conf").exists()
    assert (started.rootfs / outside.relative_to("/") / "conf").read_text() == "file"


def test_copy_through_relative_symlink_with_dotdot_stays_in_rootfs(started: Acbuild, host: Path,
                                                                   tmp_path: Path) -> None:
    (started.rootfs / "up").symlink_to("../../../../../../../../..")
    started("copy", str(host / "file.txt"), "/up/tmp/escape.txt")
    assert (started.rootfs / "tmp" / "escape.txt").read_text() == "file"
    assert not Path("/tmp/escape.txt").exists()


def test_copy_replaces_a_symlink_not_its_target(started: Acbuild, host: Path,
                                                tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (started.rootfs / "conf").symlink_to(str(victim))
    started("copy", str(host / "file.txt"), "/conf")
    assert victim.read_text() == "untouched"
    assert not (started.rootfs / "conf").is_symlink()
    assert (started.rootfs / "conf").read_text() == "file"


def test_failed_copy_leaves_rootfs_unchanged(started: Acbuild, host: Path) -> None:
    """A FIFO deep in the tree is found while staging: nothing reaches the rootfs."""
    os.mkfifo(host / "tree" / "sub" / "pipe")
    error = started.fails("copy", str(host / "tree"), "/opt/tree")
    assert "pipe" in error and "not a regular file" in error
    assert list(started.rootfs.iterdir()) == []
    assert [p.name for p in (started.work / ".acbuild").iterdir() if p.name.startswith("staging")] == []


def test_copy_refuses_source_containing_the_build(started: Acbuild) -> None:
    error = started.fails("copy", ".", "/everything")
    assert "contains the build context" in error
    assert list(started.rootfs.iterdir()) == []


def test_copy_to_dir_several_sources(started: Acbuild, host: Path) -> None:
    started("copy-to-dir", str(host / "file.txt"), str(host / "run.sh"), str(host / "tree"),
            "/usr/share/app")
    share = started.rootfs / "usr/share/app"
    assert (share / "file.txt").read_text() == "file"
    assert (share / "run.sh").stat().st_mode & 0o777 == 0o750
    assert (share / "tree" / "sub" / "b.txt").read_text() == "b"


def test_copy_to_dir_follows_directory_symlinks_inside_the_image(started: Acbuild,
                                                                 host: Path) -> None:
    (started.rootfs / "usr" / "bin").mkdir(parents=True)
    (started.rootfs / "bin").symlink_to("/usr/bin")
    started("copy-to-dir", str(host / "run.sh"), "/bin")
    assert (started.rootfs / "usr" / "bin" / "run.sh").is_file()


def test_copy_to_dir_errors(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "file.txt"), "/plain")
    assert 'target "/plain" is not a directory' in started.fails(
        "copy-to-dir", str(host / "run.sh"), "/plain")
    assert "no such file or directory" in started.fails(
        "copy-to-dir", str(host / "run.sh"), str(host / "missing"), "/dir")
    assert not (started.rootfs / "dir").exists()  # the existing source was not copied either
    assert started.fails("copy-to-dir", "/only-a-dir") == \
        "copy-to-dir: incorrect number of arguments\n"  # acbuild v0.4.0's words and exit 1


def test_copy_directory_to_root_merges_into_rootfs(started: Acbuild, host: Path) -> None:
    started("copy", str(host / "tree"), "/")
    assert (started.rootfs / "a.txt").read_text() == "a"
    assert (started.rootfs / "sub" / "b.txt").read_text() == "b"
    assert "root directory" in started.fails("copy", str(host / "file.txt"), "/")


def test_copy_to_dir_copies_all_or_nothing(started: Acbuild, host: Path) -> None:
    os.mkfifo(host / "tree" / "fifo")
    error = started.fails("copy-to-dir", str(host / "file.txt"), str(host / "tree"), "/dest")
    assert "fifo" in error
    assert not (started.rootfs / "dest").exists()  # not even the first, good source
