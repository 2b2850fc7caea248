"""Squashing rules, one small image per rule (overlay semantics, as Docker applies layers)."""

from __future__ import annotations

import dataclasses
import tarfile

import oci_images as oi

from registry.aci import ACIWriter, extract_aci, read_aci
from registry.docker.archive import open_local_image
from registry.docker.convert import convert, convert_squashed
from registry.docker.manifest import squashed_manifest, validated_json
from registry.docker.squash import emit, plan


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


def _counted(tmp_path, layers):
    """The image of `layers` with each layer's opens counted, and the image ID both passes over
    every layer give (plan, then emit: the way that needs no one-pass decisions)."""
    image_dir = oi.write_oci_layout(tmp_path / "img", layers).layout
    opens: list[int] = [0] * len(layers)

    def counting(index, opener):
        def opened():
            opens[index] += 1
            return opener()
        return opened

    with open_local_image(image_dir) as image:
        with ACIWriter(tmp_path / "two-pass.aci", "none") as writer:
            writer.add_manifest(validated_json(squashed_manifest(image)))
            emit(image.layers, plan(image.layers), writer)
            two_pass_id = writer.commit()
        image.layers = [dataclasses.replace(layer, opener=counting(i, layer.opener))
                        for i, layer in enumerate(image.layers)]
        result = convert_squashed(image, tmp_path / "squashed.aci", "gzip")
    return result, opens, two_pass_id


def test_every_layer_is_read_once(tmp_path):
    # The sample's whiteouts, opaque directory, replacements and links, except its upper file
    # over the target of a lower hard link (the case below).
    lower, upper = oi.sample_layers()
    upper = [e for e in upper if e.path != "hl-target"]
    result, opens, two_pass_id = _counted(tmp_path, [lower, upper])
    # Top layer first, each member decided as it streams by...
    assert opens == [1, 1]
    # ...into the very tar both passes make.
    assert result.image_id == two_pass_id
    assert read_aci(result.path).image_id == two_pass_id


def test_the_rootfs_is_written_top_layer_first(tmp_path):
    # As docker2aci v0.17.2 writes it; within a layer, the layer's own order.
    image = oi.write_oci_layout(tmp_path / "img", [
        [oi.directory("d", mode=0o750), oi.file("d/low", "l"), oi.file("shared", "old")],
        [oi.file("d/up", "u"), oi.file("shared", "new")],
    ])
    (tmp_path / "out").mkdir()
    [result] = convert(str(image.layout), tmp_path / "out")
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
    assert names == ["manifest", "rootfs", "rootfs/d/up", "rootfs/shared", "rootfs/d",
                     "rootfs/d/low"]
    # A child before its parent's entry is fine: the directory gets its own mode all the same.
    assert read_aci(result.path).image_id == result.image_id
    extract_aci(result.path, tmp_path / "x", rootfs_only=True)
    assert (tmp_path / "x/d/up").read_text() == "u" and (tmp_path / "x/shared").read_text() == "new"
    assert (tmp_path / "x/d").stat().st_mode & 0o7777 == 0o750


def test_a_single_layer_image_is_read_once(tmp_path):
    result, opens, two_pass_id = _counted(tmp_path, [[oi.directory("d"), oi.file("d/f", "f"),
                                                      oi.hardlink("d/l", "d/f")]])
    assert opens == [1]
    assert result.image_id == two_pass_id
    assert oi.rootfs_listing(result.path) == {"d": ("dir", ""), "d/f": ("file", "f"),
                                              "d/l": ("hardlink", "d/f")}


def test_a_repeated_identical_directory_keeps_one_pass(tmp_path):
    # Concatenated tars repeat their parent directories: the same directory twice changes
    # nothing, so the layer is still decided as it streams by.
    result, opens, two_pass_id = _counted(tmp_path, [
        [oi.directory("d"), oi.file("d/a", "a")],
        [oi.directory("e"), oi.file("e/x", "x"), oi.directory("e"), oi.file("e/y", "y")],
    ])
    assert opens == [1, 1]
    assert result.image_id == two_pass_id
    with tarfile.open(result.path) as tar:
        assert [m.name for m in tar if m.name == "rootfs/e"] == ["rootfs/e"]


def test_a_repeated_directory_that_differs_is_the_later_one(tmp_path):
    # Not the same directory (another mode): the later entry wins, as tar applies it; the top
    # layer cannot be decided as it streams by, so it is written again by its plan.
    result, opens, two_pass_id = _counted(tmp_path, [
        [oi.file("base", "b")],
        [oi.directory("e"), oi.file("e/x", "x"), oi.directory("e", mode=0o700)],
    ])
    assert opens == [1, 2]  # (bottom first) the top layer twice: one pass, then by its plan
    assert result.image_id == two_pass_id
    with tarfile.open(result.path) as tar:
        assert [oct(m.mode) for m in tar if m.name == "rootfs/e"] == ["0o700"]


def test_what_one_pass_cannot_decide_is_written_by_its_plan(tmp_path):
    # A later duplicate and a hard link to a whited-out target, both in the bottom layer: its
    # one-pass walk turns into its plan, and the second attempt writes it by that plan.
    result, opens, two_pass_id = _counted(tmp_path, [
        [oi.file("f", "first"), oi.file("f", "second"), oi.file("t", "content"),
         oi.hardlink("l", "t")],
        [oi.whiteout("t")],
    ])
    assert opens == [2, 2]
    assert result.image_id == two_pass_id
    assert oi.rootfs_listing(result.path) == {"f": ("file", "second"), "l": ("file", "content")}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_many_undecidable_layers_cost_at_most_three_reads(tmp_path):
    layers = [[oi.file(f"f{n}", "first"), oi.file(f"f{n}", "second")] for n in range(4)]
    result, opens, two_pass_id = _counted(tmp_path, layers)
    # The top one refuses and is planned; the next attempt's first refusal plans every layer
    # below it in the same read; the third writes them all by plan.
    assert opens == [2, 2, 2, 3]  # (bottom first)
    assert max(opens) <= 3
    assert result.image_id == two_pass_id
    assert oi.rootfs_listing(result.path) == {f"f{n}": ("file", "second") for n in range(4)}
