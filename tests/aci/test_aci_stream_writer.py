"""ACIWriter, the one streaming writer: tarfile's exact bytes, errors from its compressing
thread reach the caller, and a write left unfinished leaves no file."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from registry.aci import ACIWriter, read_aci

MANIFEST = (b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/w",'
            b'"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]}')


def _entries() -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for name, kind, data in (("manifest", tarfile.REGTYPE, MANIFEST),
                             ("rootfs", tarfile.DIRTYPE, b""),
                             ("rootfs/big", tarfile.REGTYPE, bytes(range(256)) * 5000),
                             ("rootfs/" + "long-name-" * 20, tarfile.REGTYPE, b"x" * 513),
                             ("rootfs/link", tarfile.SYMTYPE, b"")):
        info = tarfile.TarInfo(name)
        info.type, info.size = kind, len(data)
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        if kind == tarfile.SYMTYPE:
            info.linkname = "big"
        out.append((info, data))
    return out


def test_bytes_and_image_id_are_tarfiles(tmp_path: Path) -> None:
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in _entries():
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    target = tmp_path / "w.aci"
    with ACIWriter(target, "gzip") as writer:
        for info, data in _entries():
            if info.isreg() and info.name == "rootfs/big":
                sink = writer.begin(info)  # streamed in pieces, as docker2aci does
                for start in range(0, len(data), 70_000):
                    sink(memoryview(data)[start:start + 70_000])
                writer.end()
            else:
                writer.add(info, io.BytesIO(data))
        image_id = writer.commit()
    assert gzip.decompress(target.read_bytes()) == reference.getvalue()
    assert image_id == "sha512-" + hashlib.sha512(reference.getvalue()).hexdigest()
    assert read_aci(target).image_id == image_id


class _Broken(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_an_error_in_the_compressing_thread_reaches_the_caller() -> None:
    with pytest.raises(OSError, match="No space left"):
        with ACIWriter(_Broken(), "none") as writer:  # type: ignore[arg-type]
            for _ in range(16):
                writer.add(*_one_mib_file())
            writer.commit()


def _one_mib_file() -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo("rootfs/f")
    info.size = 1 << 20
    return info, io.BytesIO(bytes(1 << 20))


def test_an_unfinished_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="stop"):
        with ACIWriter(tmp_path / "half.aci") as writer:
            writer.add_manifest(MANIFEST)
            writer.add(*_one_mib_file())
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_a_short_entry_is_refused(tmp_path: Path) -> None:
    from registry.aci import ACIError

    info = tarfile.TarInfo("rootfs/short")
    info.size = 100
    with pytest.raises(ACIError, match="shorter than its 100 bytes"):
        with ACIWriter(tmp_path / "s.aci") as writer:
            writer.add(info, io.BytesIO(b"only ten.."))
    assert list(tmp_path.iterdir()) == []
