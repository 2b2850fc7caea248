"""The gzip ACIs the writer makes with ISA-L's deflate (registry/aci/compression.py): ordinary
gzip streams that `gzip -dc`, Python's zlib, Go's reader (actool) and our own reader accept, not
much larger than `gzip -6`; and the zlib fallback when isal is not installed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import sysconfig
import tarfile
import threading
import types
import zlib
from pathlib import Path
from typing import Any

import pytest
from components import missing

from registry.aci import ACIWriter, image_id_of, read_aci
from registry.aci.compression import DEFLATE, GZIP_BLOCK, ParallelGzip, deflate_threads

DEFLATE_MODULE: types.ModuleType = zlib  # the module behind DEFLATE, to check its bytes with
if DEFLATE.name == "isal":
    from isal import isal_zlib

    DEFLATE_MODULE = isal_zlib

REPO = Path(__file__).resolve().parents[2]
# Within this of `gzip -6` on ordinary image content (measured: 7-10% with ISA-L level 3).
SIZE_BOUND = 1.12
REALISTIC_BYTES = 24 << 20
MANIFEST = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                       "name": "example.com/compressed"}).encode()


def realistic_files(limit: int = REALISTIC_BYTES) -> list[Path]:
    """Python's standard library (source text) and its extension modules (ELF code): what
    images hold, present wherever the tests run."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found: list[Path] = []
    total = 0
    for directory in (stdlib / "lib-dynload", stdlib):
        for path in sorted(directory.rglob("*")):
            if {"site-packages", "__pycache__"} & set(path.parts) or (
                    directory == stdlib and path.is_relative_to(stdlib / "lib-dynload")):
                continue
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 << 20:
                continue  # (the static libpython alone would be most of the bytes)
            found.append(path)
            total += path.stat().st_size
            if total >= limit:
                return found
    return found


def write_realistic(out: Path, files: list[Path]) -> str:
    with ACIWriter(out, "gzip") as writer:
        writer.add_manifest(MANIFEST)
        for index, path in enumerate(files):
            info = tarfile.TarInfo(f"rootfs/f{index:05d}-{path.name}")
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as handle:
                writer.add(info, handle)
        return writer.commit()


@pytest.fixture(scope="module")
def realistic_aci(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compression") / "realistic.aci"
    return out, write_realistic(out, realistic_files())


def test_isal_is_the_deflate_in_use() -> None:
    """isal is a dependency of the host side: without it every gzip is several times slower."""
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        missing("the isal package is not installed (pip install -e .)")
    assert (DEFLATE.name, DEFLATE.level) == ("isal", 3)


def test_output_is_a_gzip_stream_every_reader_accepts(realistic_aci: tuple[Path, str],
                                                      actool_validate) -> None:
    aci, image_id = realistic_aci
    raw = aci.read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x00" and raw[4:8] == bytes(4)  # no name, mtime 0
    # gzip(1) reads it, checking CRC and length.
    subprocess.run(["gzip", "-t"], input=raw, check=True)
    by_gzip = subprocess.run(["gzip", "-dc"], input=raw, check=True, capture_output=True).stdout
    # Python's zlib reads it, and finds nothing after the single member.
    inflater = zlib.decompressobj(wbits=31)
    by_zlib = inflater.decompress(raw) + inflater.flush()
    assert inflater.eof and not inflater.unused_data
    assert by_gzip == by_zlib
    # The image ID is the SHA-512 of exactly that tar.
    assert image_id == "sha512-" + hashlib.sha512(by_zlib).hexdigest()
    assert image_id_of(aci) == image_id
    info = read_aci(aci)
    assert (info.compression, info.uncompressed_size) == ("gzip", len(by_zlib))
    with tarfile.open(aci) as archive:
        assert archive.getnames()[:2] == ["manifest", "rootfs"]
    actool_validate(aci)  # Go's compress/gzip, as rkt reads images


def test_size_within_bound_of_gzip_6(realistic_aci: tuple[Path, str]) -> None:
    aci, _ = realistic_aci
    tar = subprocess.run(["gzip", "-dc", str(aci)], check=True, capture_output=True).stdout
    gzip6 = len(subprocess.run(["gzip", "-6", "-c"], input=tar, check=True,
                               capture_output=True).stdout)
    ratio = aci.stat().st_size / gzip6
    assert ratio <= SIZE_BOUND, f"{aci.stat().st_size} bytes, gzip -6 {gzip6}: {ratio:.3f}x"


# `sys.modules["isal"] = None` makes `import isal` fail as when the package is not installed.
FALLBACK = """
import sys
sys.modules["isal"] = None
sys.path[:0] = [{tests!r}, {shared!r}]
from pathlib import Path
from registry.aci import read_aci
from registry.aci.compression import DEFLATE
from test_aci_compression import realistic_files, write_realistic
image_id = write_realistic(Path({out!r}), realistic_files({limit}))
print(DEFLATE.name, DEFLATE.level, image_id, read_aci({isal_aci!r}).image_id)
"""


def test_without_isal_zlib_writes_and_reads(realistic_aci: tuple[Path, str],
                                            tmp_path: Path) -> None:
    isal_aci, isal_id = realistic_aci
    out = tmp_path / "zlib.aci"
    code = FALLBACK.format(tests=str(Path(__file__).parent), shared=str(REPO / "tests"), out=str(out),
                           limit=REALISTIC_BYTES, isal_aci=str(isal_aci))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    name, level, image_id, read_back = result.stdout.split()
    assert (name, level) == ("zlib", "6")
    # The same tar whatever the deflate library: the image ID does not change...
    assert image_id == isal_id
    # ...and the zlib reader reads what ISA-L wrote.
    assert read_back == isal_id
    # The fallback writes exactly what zlib at gzip's level 6 makes of that tar, block by block.
    tar = subprocess.run(["gzip", "-dc", str(out)], check=True, capture_output=True).stdout
    assert out.read_bytes() == blockwise_gzip(tar, zlib, 6, zlib.DEF_MEM_LEVEL)


def blockwise_gzip(data: bytes, library: Any, level: int, mem_level: int) -> bytes:
    """The gzip member ParallelGzip is meant to write, made here one block after the other with
    the library itself: a header with no name and mtime 0; each GZIP_BLOCK of the input
    deflated on its own, primed with the 32 KiB before it, and sync-flushed; a final empty
    block; the CRC-32 and length of the whole."""
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]
    for start in range(0, max(len(data), 1), GZIP_BLOCK):
        args: tuple[Any, ...] = (level, zlib.DEFLATED, -15, mem_level)
        if start:
            args += (zlib.Z_DEFAULT_STRATEGY, data[start - (32 << 10):start])
        engine = library.compressobj(*args)
        out.append(engine.compress(data[start:start + GZIP_BLOCK]) + engine.flush(zlib.Z_SYNC_FLUSH))
    out.append(library.compressobj(level, zlib.DEFLATED, -15).flush())
    out.append(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(out)


def _mixed(size: int) -> bytes:
    """Text, code-like bytes and noise, so blocks compress differently."""
    pieces, total, n = [], 0, 0
    while total < size:
        piece = (f"line {n} of some text that repeats a little\n".encode() * 50
                 + hashlib.sha512(str(n).encode()).digest() * 20 + os.urandom(512))
        pieces.append(piece)
        total += len(piece)
        n += 1
    return b"".join(pieces)[:size]


def test_parallel_gzip_is_the_same_stream_however_it_is_fed() -> None:
    data = _mixed(3 * GZIP_BLOCK + 12345)
    expected = blockwise_gzip(data, DEFLATE_MODULE, DEFLATE.level, DEFLATE.mem_level)
    for threads, piece in ((1, 1 << 20), (2, 70_000), (3, 4 << 20), (4, 1)):
        gz = ParallelGzip(threads)
        view = memoryview(data)
        # Pieces of every size: one byte at a time for the first 3000 bytes with `piece` 1.
        out = [gz.compress(view[start:start + piece])
               for start in range(0, 3000 if piece == 1 else 0, piece)]
        out += [gz.compress(view[3000 if piece == 1 else 0:])]
        out.append(gz.flush())
        assert b"".join(out) == expected, (threads, piece)
    assert gzip.decompress(expected) == data
    subprocess.run(["gzip", "-t"], input=expected, check=True)


def test_parallel_gzip_of_nothing_is_a_valid_empty_stream() -> None:
    empty = ParallelGzip(2).flush()
    assert gzip.decompress(empty) == b""
    fed_nothing = ParallelGzip(2)
    assert fed_nothing.compress(b"") + fed_nothing.flush() == empty
    assert empty == blockwise_gzip(b"", DEFLATE_MODULE, DEFLATE.level, DEFLATE.mem_level)


def test_parallel_gzip_threads_end_with_the_writer(tmp_path: Path) -> None:
    def deflaters() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("aci-deflate")]

    assert deflaters() == []
    write_realistic(tmp_path / "done.aci", realistic_files(4 << 20))
    assert deflaters() == []
    with pytest.raises(RuntimeError, match="stop"):
        with ACIWriter(tmp_path / "half.aci", "gzip") as writer:
            writer.add_manifest(MANIFEST)
            info = tarfile.TarInfo("rootfs/big")
            info.size = 6 << 20
            writer.add(info, io.BytesIO(_mixed(info.size)))
            raise RuntimeError("stop")
    assert deflaters() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.aci"]


# gevent's monkey-patching makes threads greenlets of one OS thread (the registry's gevent
# workers convert OCI pushes so): the deflate must still get OS threads of its own.
UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import io, sys, tarfile, threading
sys.path[:0] = [{tests!r}, {shared!r}]
import registry.aci.compression as compression
from registry.aci import read_aci
from test_aci_compression import realistic_files, write_realistic
os_thread = monkey.get_original("_thread", "get_ident")
deflaters = set()
deflate = compression._deflate_block
def spied(block, window):
    deflaters.add(os_thread())
    return deflate(block, window)
compression._deflate_block = spied
result = {{}}
def convert():
    result["id"] = write_realistic({out!r}, realistic_files(8 << 20))
worker = threading.Thread(target=convert)  # a greenlet, as the registry's conversions are
worker.start()
worker.join()
print(len(deflaters - {{os_thread()}}), result["id"] == read_aci({out!r}).image_id)
"""


def test_under_gevent_the_deflate_runs_in_threads_of_the_os(tmp_path: Path) -> None:
    code = UNDER_GEVENT.format(tests=str(Path(__file__).parent), shared=str(REPO / "tests"),
                               out=str(tmp_path / "gevent.aci"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    others, readable = result.stdout.split()
    # Off the event loop's OS thread (the compression helper itself is a greenlet there);
    # with one CPU the blocks are deflated in place, by design.
    assert int(others) >= (1 if deflate_threads() > 1 else 0) and readable == "True"
