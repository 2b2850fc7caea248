"""read_aci and image_id_of against the real tools: image IDs equal `sha512sum` of the
uncompressed tar for every compression, detected by magic bytes, in one streaming pass."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from acitrees import MANIFEST, make_tree, make_writable

from registry.aci import (
    ArchiveError,
    ImageManifest,
    image_id_of,
    read_aci,
    short_id,
    write_aci,
)

COMMANDS = {"gzip": ["gzip", "-c"], "bzip2": ["bzip2", "-c"], "xz": ["xz", "-c"]}


@pytest.fixture(scope="module")
def plain_aci(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uncompressed ACI of a varied tree, written by the format core."""
    directory = tmp_path_factory.mktemp("reader")
    rootfs = make_tree(directory / "rootfs")
    output = directory / "image.tar"
    write_aci(ImageManifest.from_dict(MANIFEST), rootfs, output, compression="none")
    make_writable(rootfs)
    return output


def sha512sum(path: Path) -> str:
    output = subprocess.run(["sha512sum", str(path)], check=True, capture_output=True,
                            text=True).stdout
    return "sha512-" + output.split()[0]


def compress_with_tool(plain: Path, compression: str, target: Path) -> Path:
    if compression == "none":
        shutil.copyfile(plain, target)
    else:
        with open(plain, "rb") as source, open(target, "wb") as out:
            subprocess.run(COMMANDS[compression], stdin=source, stdout=out, check=True)
    return target


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_image_id_is_sha512sum_of_uncompressed_tar(plain_aci: Path, tmp_path: Path,
                                                   compression: str) -> None:
    # A misleading name: the compression must come from the magic bytes, not the suffix.
    image = compress_with_tool(plain_aci, compression, tmp_path / "image.tar.zst")
    expected = sha512sum(plain_aci)
    if compression != "none":
        decompressed = subprocess.run(f"{compression} -dc '{image}' | sha512sum", shell=True,
                                      check=True, capture_output=True, text=True).stdout
        assert expected == "sha512-" + decompressed.split()[0]
    info = read_aci(image)
    assert info.image_id == expected
    assert info.compression == compression
    assert info.uncompressed_size == plain_aci.stat().st_size
    assert image_id_of(image) == expected
    assert info.manifest == ImageManifest.from_dict(MANIFEST)
    assert ImageManifest.from_json(info.manifest_bytes) == info.manifest


def test_short_id() -> None:
    image_id = "sha512-" + "0123456789abcdef" * 8
    assert short_id(image_id) == "sha512-0123456789abcdef0123456789abcdef"


def test_reads_a_pipe_to_eof_in_one_pass(plain_aci: Path, tmp_path: Path) -> None:
    """No seeking (a pipe cannot) and every byte consumed, so a caller teeing the stream
    into a file gets all of it."""
    image = compress_with_tool(plain_aci, "xz", tmp_path / "image.aci")
    copy = tmp_path / "teed.aci"

    class Tee(io.RawIOBase):
        def __init__(self, source: io.BufferedReader, sink: io.BufferedWriter) -> None:
            self.source, self.sink = source, sink

        def read(self, size: int = -1) -> bytes:
            data = self.source.read(size)
            self.sink.write(data)
            return data

    with subprocess.Popen(["cat", str(image)], stdout=subprocess.PIPE) as cat, \
            open(copy, "wb") as sink:
        info = read_aci(Tee(cat.stdout, sink))  # type: ignore[arg-type]
    assert copy.read_bytes() == image.read_bytes()
    assert info.image_id == sha512sum(plain_aci)


@pytest.mark.parametrize("tar_format", ["gnu", "pax", "ustar"])
def test_archives_written_by_gnu_tar(tmp_path: Path, tar_format: str) -> None:
    """Headers from another writer (long names as GNU L records or pax records)."""
    layout = tmp_path / "layout"
    make_tree(layout / "rootfs") if tar_format != "ustar" else _short_tree(layout / "rootfs")
    (layout / "manifest").write_text(ImageManifest.from_dict(MANIFEST).to_json().decode())
    image = tmp_path / "image.aci"
    subprocess.run(["tar", f"--format={tar_format}", "-C", str(layout), "-czf", str(image),
                    "manifest", "rootfs"], check=True)
    info = read_aci(image)
    plain = tmp_path / "plain.tar"
    plain.write_bytes(gzip.decompress(image.read_bytes()))
    assert info.image_id == sha512sum(plain)
    assert info.manifest.name == "example.com/tree"
    make_writable(layout)


def _short_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"tool")
    (root / "bin" / "link").symlink_to("tool")


def test_concatenated_gzip_members_and_zero_padding(plain_aci: Path, tmp_path: Path) -> None:
    data = plain_aci.read_bytes()
    middle = len(data) // 3
    image = tmp_path / "members.aci"
    image.write_bytes(gzip.compress(data[:middle]) + gzip.compress(data[middle:]) + bytes(512))
    assert subprocess.run(["gzip", "-t", str(image)], capture_output=True).returncode in (0, 2)
    assert read_aci(image).image_id == sha512sum(plain_aci)


@pytest.mark.parametrize("compression", ["bzip2", "xz"])
def test_concatenated_streams(plain_aci: Path, tmp_path: Path, compression: str) -> None:
    """`bzip2 -dc` and `xz -dc` decode concatenated streams as one: so does the reader."""
    data = plain_aci.read_bytes()
    middle = len(data) // 2
    image = tmp_path / "streams.aci"
    with open(image, "wb") as out:
        for part in (data[:middle], data[middle:]):
            out.write(subprocess.run(COMMANDS[compression], input=part, check=True,
                                     capture_output=True).stdout)
    via_tool = subprocess.run(f"{compression} -dc '{image}' | sha512sum", shell=True,
                              check=True, capture_output=True, text=True).stdout.split()[0]
    assert read_aci(image).image_id == "sha512-" + via_tool == sha512sum(plain_aci)


def test_max_uncompressed_is_enforced(plain_aci: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        read_aci(plain_aci, max_uncompressed=64 * 1024)
    assert caught.value.reason == "too-large"
    assert read_aci(plain_aci, max_uncompressed=plain_aci.stat().st_size).image_id


def test_leading_dot_slash_names_are_the_same_layout(tmp_path: Path) -> None:
    """`./manifest` and `./rootfs/...` (as `tar -C dir .` writes) are a valid layout."""
    layout = tmp_path / "layout"
    _short_tree(layout / "rootfs")
    (layout / "manifest").write_bytes(ImageManifest.from_dict(MANIFEST).to_json())
    image = tmp_path / "dot.aci"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(image), "."], check=True)
    info = read_aci(image)
    assert info.image_id == sha512sum(image)
    with tarfile.open(image) as archive:
        assert "./manifest" in archive.getnames()


def test_image_id_of_needs_no_valid_layout(tmp_path: Path) -> None:
    """image_id_of only hashes: any tar (even a non-ACI) has an ID."""
    blob = tmp_path / "anything.gz"
    blob.write_bytes(gzip.compress(b"not even a tar"))
    assert image_id_of(blob) == "sha512-" + hashlib.sha512(b"not even a tar").hexdigest()


def test_reads_and_extracts_what_actool_builds(tmp_path: Path, actool: str) -> None:
    """Interoperability: an ACI made by appc's reference tool."""
    from registry.aci import extract_aci

    layout = tmp_path / "layout"
    make_tree(layout / "rootfs")
    (layout / "manifest").write_bytes(ImageManifest.from_dict(MANIFEST).to_json())
    image = tmp_path / "actool.aci"
    subprocess.run([actool, "build", str(layout), str(image)], check=True, capture_output=True)
    info = read_aci(image)
    plain = tmp_path / "plain.tar"
    plain.write_bytes(gzip.decompress(image.read_bytes()))
    assert info.image_id == sha512sum(plain)
    extract_aci(image, tmp_path / "out")
    assert (tmp_path / "out" / "rootfs" / "etc" / "config").read_text().startswith("key =")
    make_writable(tmp_path / "out")
    make_writable(layout)


def test_image_id_of_loads_only_what_hashing_needs(plain_aci: Path, tmp_path: Path) -> None:
    """Computing an ID is often a process of its own (`pyrkt image`, scripts, the benchmark):
    it imports no tar parser, layout checker, manifest model, dataclasses or the writer's
    thread pool (logging, traceback), and reading an ACI afterwards still loads them and
    gives the same ID."""
    import ast
    import sys

    image = compress_with_tool(plain_aci, "gzip", tmp_path / "image.aci")
    probe = ("import sys\n"
             "from registry.aci import image_id_of\n"
             f"image_id = image_id_of({str(image)!r})\n"
             "before = sorted(sys.modules)\n"
             "from registry.aci import read_aci\n"
             f"same = read_aci({str(image)!r}).image_id == image_id\n"
             "print(repr([image_id, before, same, sorted(sys.modules)]))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)
    image_id, loaded, same, after = ast.literal_eval(result.stdout)
    assert image_id == sha512sum(plain_aci)
    heavy = {"registry.aci.tarstream", "registry.aci.layout", "registry.aci.manifest",
             "registry.aci.parts", "dataclasses", "json", "concurrent.futures", "logging"}
    assert heavy & set(loaded) == set()
    assert same and {"registry.aci.layout", "registry.aci.manifest"} <= set(after)
