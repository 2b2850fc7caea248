"""A corpus of hostile and broken ACIs, generated on demand (standard library only).

    from hostile_archives import build_corpus
    for case in build_corpus(tmp_path):          # list[HostileCase]; case_names(): ids only
        with pytest.raises(ACIError) as caught:
            read_aci(case.path)                    # or extract_aci(case.path, dest)
        assert caught.value.reason == case.reason
        assert case.message in str(caught.value)

Every case is refused by `registry.aci.extract_aci`. Cases whose `stage` is "read" are also
refused by `registry.aci.read_aci` (so by uploads and fetches); "extract" cases (device nodes
and fifos) are well-formed ACIs that only extraction refuses (unless `allow_devices=True`).
`reason` is the `.reason` of the ACIError raised (ArchiveError or ManifestError); `message` is
a fragment of its text. The files are small (the bomb is ~1 MiB and expands to 1 GiB).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import random
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                       "name": "example.com/hostile",
                       "labels": [{"name": "os", "value": "linux"},
                                  {"name": "arch", "value": "amd64"}]}).encode()


# 100,000 `[` then 100,000 `]`: json's recursive decoder dies on it (RecursionError).
NESTED_MANIFEST = b"[" * 100_000 + b"]" * 100_000


def aci_bytes(manifest: bytes, *, name: str = "rootfs/hello", data: bytes = b"hello\n") -> bytes:
    """A gzip ACI with exactly these manifest bytes (valid or not) and one file."""
    return _gzip(_tar([_member("manifest", data=manifest), _member("rootfs", tarfile.DIRTYPE),
                       _member(name, data=data)]))


@dataclass(frozen=True)
class HostileCase:
    name: str         # short identifier, also the file's stem
    path: Path        # the generated .aci
    reason: str       # expected ACIError.reason
    message: str      # a fragment of the expected error message
    stage: str        # "read": read_aci refuses it too; "extract": only extraction does
    description: str


# -- tar building blocks ----------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *, mode: int = 0o644,
            linkname: str = "", devmajor: int = 0, devminor: int = 0,
            size: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    info.size = len(data) if size is None else size
    info.devmajor, info.devminor = devmajor, devminor
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A tar archive of exactly these members, in this order, duplicates and all."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _valid(*extra: tuple[tarfile.TarInfo, bytes], manifest: bytes = MANIFEST
           ) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_member("manifest", data=manifest), _member("rootfs", tarfile.DIRTYPE),
            _member("rootfs/hello", data=b"hello\n"), *extra]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _raw_header(name: str, size: int) -> bytes:
    """One ustar header, written by hand so the size can promise data that never comes."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


# -- the cases --------------------------------------------------------------------------


def _bomb() -> bytes:
    """1 GiB of zeros in about 1 MiB: one gzip member per MiB, all the same bytes."""
    header_blocks = _tar([_member("manifest", data=MANIFEST), _member("rootfs", tarfile.DIRTYPE)])
    # Drop the end-of-archive marker and record padding, then announce a 1 GiB file.
    body = header_blocks[: _data_end(header_blocks)] + _raw_header("rootfs/zeros", 1 << 30)
    zeros = _gzip(bytes(1 << 20))
    return _gzip(body) + zeros * 1024 + _gzip(bytes(1024))


def _data_end(archive: bytes) -> int:
    """Offset of the end-of-archive marker of a tar written by tarfile (two zero blocks)."""
    position = 0
    while archive[position:position + 512] != bytes(512):
        info = tarfile.TarInfo.frombuf(archive[position:position + 512], "utf-8", "strict")
        position += 512 + (-(-info.size // 512) * 512 if info.isreg() else 0)
    return position


def _bad_checksum() -> bytes:
    archive = bytearray(_tar(_valid(_member("rootfs/second", data=b"2"))))
    second = _data_end(_tar(_valid()))  # where the fourth header starts
    archive[second + 150] ^= 0x01  # flip a checksum digit
    return bytes(archive)


def _corrupt_gzip() -> bytes:
    # Incompressible payload, so a flipped byte in the middle lands in deflate data.
    payload = random.Random(7).randbytes(64 << 10)
    data = bytearray(_gzip(_tar(_valid(_member("rootfs/noise", data=payload)))))
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    return bytes(data)


def _truncated(compress: Callable[[bytes], bytes]) -> bytes:
    payload = random.Random(11).randbytes(32 << 10)
    data = compress(_tar(_valid(_member("rootfs/noise", data=payload))))
    return data[: len(data) * 2 // 3]


_CASES: list[tuple[str, str, str, str, Callable[[], bytes], str]] = [
    # name, reason, message fragment, stage, builder, description
    ("traversal", "path-traversal", "..", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/../../../tmp/pyrkt-escaped", data=b"x")))),
     "an entry whose name climbs out with .."),
    ("traversal-top-level", "path-traversal", "..", "read",
     lambda: _gzip(_tar(_valid(_member("../pyrkt-escaped", data=b"x")))),
     "a top-level entry named ../something"),
    ("absolute-path", "absolute-path", "absolute path", "read",
     lambda: _gzip(_tar(_valid(_member("/tmp/pyrkt-absolute", data=b"x")))),
     "an entry with an absolute name"),
    ("symlink-escape", "link-escape", "points outside", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/up", tarfile.SYMTYPE,
                                       linkname="../../../../etc")))),
     "a relative symlink resolving above rootfs/"),
    ("write-through-symlink", "link-escape", "not a directory", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/etc", tarfile.SYMTYPE, linkname="/etc"),
                               _member("rootfs/etc/pyrkt-owned", data=b"x")))),
     "a file placed below a symlink (writing it would follow the link)"),
    ("hardlink-escape-absolute", "link-escape", "hard link", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/passwd", tarfile.LNKTYPE,
                                       linkname="/etc/passwd")))),
     "a hard link to an absolute host path"),
    ("hardlink-escape-traversal", "link-escape", "hard link", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/shadow", tarfile.LNKTYPE,
                                       linkname="rootfs/../../etc/shadow")))),
     "a hard link climbing out with .."),
    ("hardlink-to-manifest", "link-escape", "outside rootfs", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/m", tarfile.LNKTYPE, linkname="manifest")))),
     "a hard link to a file outside rootfs/"),
    ("hardlink-dangling", "link-escape", "not an earlier file", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/l", tarfile.LNKTYPE,
                                       linkname="rootfs/nowhere")))),
     "a hard link to a file the archive never had"),
    ("char-device", "device-node", "character device", "extract",
     lambda: _gzip(_tar(_valid(_member("rootfs/dev-null", tarfile.CHRTYPE, devmajor=1,
                                       devminor=3)))),
     "a character device node"),
    ("block-device", "device-node", "block device", "extract",
     lambda: _gzip(_tar(_valid(_member("rootfs/sda", tarfile.BLKTYPE, devmajor=8)))),
     "a block device node"),
    ("fifo", "device-node", "fifo", "extract",
     lambda: _gzip(_tar(_valid(_member("rootfs/pipe", tarfile.FIFOTYPE)))),
     "a named pipe"),
    ("duplicate-entry", "duplicate-entry", "duplicate", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/hello", data=b"second\n")))),
     "the same file twice"),
    ("duplicate-manifest", "duplicate-entry", "duplicate", "read",
     lambda: _gzip(_tar(_valid(_member("./manifest", data=MANIFEST)))),
     "two manifests (one spelled ./manifest)"),
    ("missing-manifest", "missing-manifest", "no manifest", "read",
     lambda: _gzip(_tar(_valid()[1:])),
     "rootfs/ but no manifest"),
    ("missing-rootfs", "missing-rootfs", "no rootfs", "read",
     lambda: _gzip(_tar(_valid()[:1])),
     "a manifest but no rootfs/"),
    ("rootfs-is-file", "rootfs-not-directory", "not a directory", "read",
     lambda: _gzip(_tar([_member("manifest", data=MANIFEST), _member("rootfs", data=b"x")])),
     "rootfs as a regular file"),
    ("manifest-is-directory", "manifest-not-file", "not a regular file", "read",
     lambda: _gzip(_tar([_member("manifest", tarfile.DIRTYPE),
                         _member("rootfs", tarfile.DIRTYPE)])),
     "manifest as a directory"),
    ("extra-top-level", "extra-entry", "outside rootfs/", "read",
     lambda: _gzip(_tar(_valid(_member("README", data=b"extra\n")))),
     "a third top-level entry"),
    ("entry-below-file", "bad-parent", "not a directory", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/hello/inner", data=b"x")))),
     "an entry below a regular file"),
    ("truncated-gzip", "truncated", "truncated", "read", lambda: _truncated(_gzip),
     "a gzip stream cut short"),
    ("truncated-bzip2", "truncated", "truncated", "read", lambda: _truncated(bz2.compress),
     "a bzip2 stream cut short"),
    ("truncated-xz", "truncated", "truncated", "read", lambda: _truncated(lzma.compress),
     "an xz stream cut short"),
    ("truncated-tar", "truncated", "truncated", "read",
     lambda: _tar(_valid(_member("rootfs/big", data=bytes(8192))))[:3000],
     "an uncompressed tar cut in the middle of a file"),
    ("corrupt-gzip", "bad-compression", "corrupt", "read", _corrupt_gzip,
     "gzip data with bytes flipped in the middle"),
    ("gzip-trailing-garbage", "bad-compression", "garbage after", "read",
     lambda: _gzip(_tar(_valid())) + b"this is not gzip",
     "text after the end of the gzip stream"),
    ("bad-header-checksum", "bad-header", "checksum", "read", lambda: _gzip(_bad_checksum()),
     "a tar header whose checksum does not match"),
    ("invalid-json", "invalid-json", "invalid JSON", "read",
     lambda: _gzip(_tar(_valid(manifest=b'{"acKind": "ImageManifest", '))),
     "a manifest that is not JSON"),
    ("invalid-manifest", "invalid-manifest", 'bad arch "x86_64" for os "linux"', "read",
     lambda: _gzip(_tar(_valid(manifest=MANIFEST.replace(b'"amd64"', b'"x86_64"')))),
     "a manifest breaking the os/arch rule"),
    ("manifest-too-large", "manifest-too-large", "manifest", "read",
     lambda: _gzip(_tar(_valid(manifest=MANIFEST[:-1] + b" " * (1 << 20) + b"}"))),
     "a valid JSON manifest over 1 MiB"),
    ("decompression-bomb", "bomb", "decompression bomb", "read", _bomb,
     "1 MiB of gzip expanding to a 1 GiB file of zeros"),
    ("not-tar", "not-tar", "not a tar archive", "read",
     lambda: random.Random(3).randbytes(4096),
     "random bytes"),
    ("gzip-of-garbage", "not-tar", "not a tar archive", "read",
     lambda: _gzip(random.Random(5).randbytes(4096)),
     "a valid gzip stream holding random bytes"),
    ("empty-file", "empty", "empty", "read", lambda: b"",
     "a file of zero bytes"),
    ("manifest-too-deep", "manifest-too-deep", "nested deeper than 64", "read",
     lambda: _gzip(_tar(_valid(manifest=NESTED_MANIFEST))),
     "a manifest of 100,000 [ then 100,000 ] (refused before any recursive JSON parser)"),
    ("long-component", "path-too-long", "longer than the 255", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/" + "n" * 300, data=b"x")))),
     "a file name of 300 bytes (Linux allows 255 per component)"),
    ("long-path", "path-too-long", "longer than the 4095", "read",
     lambda: _gzip(_tar(_valid(_member("rootfs/" + "/".join(["d" * 99] * 50), data=b"x")))),
     "a path of 5,006 bytes (Linux allows 4,095)"),
]

# The cases whose tar, used as a Docker/OCI layer, breaks the same rule (docker2aci refuses
# them with the same reason). The others are about the ACI layout (manifest, rootfs/), are
# device nodes (kept in a layer, refused at extraction), a later duplicate (in a layer it
# replaces the earlier entry, as Docker applies layers) or an empty file (an empty layer).
LAYER_CASES = frozenset({
    "traversal", "traversal-top-level", "absolute-path", "symlink-escape",
    "write-through-symlink", "hardlink-escape-absolute", "hardlink-escape-traversal",
    "hardlink-dangling", "entry-below-file", "truncated-gzip", "truncated-bzip2",
    "truncated-xz", "truncated-tar", "corrupt-gzip", "gzip-trailing-garbage",
    "bad-header-checksum", "decompression-bomb", "not-tar", "gzip-of-garbage",
    "long-component", "long-path",
})


def case_names() -> list[str]:
    """The names of the cases, without writing anything (for pytest parametrization)."""
    return [name for name, *_ in _CASES]


def build_corpus(directory: str | os.PathLike[str]) -> list[HostileCase]:
    """Write every hostile ACI into `directory` (created if needed) and describe them."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, reason, message, stage, build, description in _CASES:
        path = target / f"{name}.aci"
        path.write_bytes(build())
        cases.append(HostileCase(name, path, reason, message, stage, description))
    return cases


if __name__ == "__main__":
    import sys
    import tempfile

    for case in build_corpus(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()):
        print(f"{case.path}  {case.reason:22} {case.stage:8} {case.description}")
