"""Squashing rules, one small image per rule (overlay semantics, as Docker applies layers)."""

from __future__ import annotations

import oci_images as oi

from registry.docker.convert import convert


def _squash(tmp_path, layers):
    image = oi.write_oci_layout(tmp_path / "img", layers)
    out = tmp_path / "out"
    out.mkdir()
    [result] = convert(str(image.layout), out)
    return oi.rootfs_listing(result.path)


def test_a_file_replacing_a_directory_hides_its_content(tmp_path):
    got = _squash(tmp_path, [[oi.directory("d"), oi.file("d/x", "x")], [oi.file("d", "now a file")]])
    assert got == {"d": ("file", "now a file")}


def test_a_directory_replacing_a_file(tmp_path):
    got = _squash(tmp_path, [[oi.file("d", "file")], [oi.directory("d"), oi.file("d/y", "y")]])
    assert got == {"d": ("dir", ""), "d/y": ("file", "y")}


def test_lower_symlink_cannot_redirect_upper_files(tmp_path):
    got = _squash(tmp_path, [[oi.symlink("etc", "/tmp/elsewhere")], [oi.file("etc/passwd", "p")]])
    assert got == {"etc/passwd": ("file", "p")}


def test_whiteout_of_a_directory_removes_its_subtree_only_below(tmp_path):
    got = _squash(tmp_path, [
        [oi.directory("d"), oi.file("d/a", "a"), oi.directory("d/sub"), oi.file("d/sub/b", "b")],
        [oi.whiteout("d"), oi.file("d2", "kept")],
        [oi.directory("d"), oi.file("d/new", "n")],
    ])
    assert got == {"d2": ("file", "kept"), "d": ("dir", ""), "d/new": ("file", "n")}


def test_opaque_directory_keeps_its_own_layer_content(tmp_path):
    got = _squash(tmp_path, [
        [oi.directory("o"), oi.file("o/old", "old")],
        [oi.directory("o"), oi.file("o/mine", "mine"), oi.opaque("o")],
    ])
    assert got == {"o": ("dir", ""), "o/mine": ("file", "mine")}


def test_later_duplicate_in_one_layer_wins(tmp_path):
    got = _squash(tmp_path, [[oi.file("f", "first"), oi.file("f", "second")]])
    assert got == {"f": ("file", "second")}


def test_hard_link_whose_target_is_whited_out_keeps_the_content(tmp_path):
    got = _squash(tmp_path, [
        [oi.file("t", "content"), oi.hardlink("l1", "t"), oi.hardlink("l2", "t")],
        [oi.whiteout("t")],
    ])
    assert got == {"l1": ("file", "content"), "l2": ("hardlink", "l1")}


def test_aufs_metadata_and_root_entries_are_dropped(tmp_path):
    got = _squash(tmp_path, [[oi.directory("./"), oi.file(".wh..wh.aufs", ""),
                              oi.directory(".wh..wh.plnk"), oi.file("./x", "x")]])
    assert got == {"x": ("file", "x")}
