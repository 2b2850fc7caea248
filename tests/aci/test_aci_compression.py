"""The gzip ACIs the writer makes with ISA-L's deflate (registry/aci/compression.py): ordinary
gzip streams that `gzip -dc`, Python's zlib, Go's reader (actool) and our own reader accept, not
much larger than `gzip -6`; and the zlib fallback when isal is not installed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zlib
from pathlib import Path

import pytest
from components import missing

from registry.aci import ACIWriter, image_id_of, read_aci
from registry.aci.compression import DEFLATE

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
    # The fallback writes exactly what zlib at gzip's level 6 makes of that tar.
    tar = subprocess.run(["gzip", "-dc", str(out)], check=True, capture_output=True).stdout
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    assert out.read_bytes() == deflater.compress(tar) + deflater.flush()
