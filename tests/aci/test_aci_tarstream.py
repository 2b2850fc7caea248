"""The streaming tar parser: any split of the stream into chunks gives the same entries,
and every header flavour (ustar, GNU long names, pax, base-256 numbers) decodes."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.aci.tarstream import TarEntry, TarStreamParser

LONG = "directory-with-a-long-name/" * 6 + "file-" + "é" * 40


class Recorder:
    """Collects each entry's decoded header and data."""

    def __init__(self) -> None:
        self.entries: list[tuple] = []
        self._data = bytearray()

    def begin(self, entry: TarEntry):
        self._data = bytearray()
        return self._data.extend

    def end(self, entry: TarEntry) -> None:
        # tarfile strips a directory's trailing slash; the raw header keeps it.
        self.entries.append((entry.name.rstrip("/"), entry.type, entry.size, entry.linkname, entry.mode,
                             entry.uid, entry.gid, entry.mtime, entry.uname, entry.gname,
                             entry.devmajor, entry.devminor, bytes(self._data)))


def build(tar_format: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            for key, value in fields.items():
                setattr(info, key, value)
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("manifest", data=b"{}", mode=0o644, mtime=1_600_000_000)
        add("rootfs", tarfile.DIRTYPE, mode=0o755)
        add("rootfs/" + LONG, data=bytes(range(256)) * 5, uid=3_000_000, gid=7,
            uname="builder", gname="staff")
        add("rootfs/hard-" + "h" * 110, tarfile.LNKTYPE, linkname="rootfs/" + LONG)
        add("rootfs/dev", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add("rootfs/exact", data=b"x" * 512)
        add("rootfs/empty", data=b"")
    return buffer.getvalue()


def expected_entries(data: bytes) -> list[tuple]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        result = []
        for member in archive:
            content = archive.extractfile(member).read() if member.isreg() else b""
            result.append((member.name, member.type.decode(), member.size if member.isreg()
                           else 0, member.linkname, member.mode, member.uid, member.gid,
                           float(member.mtime), member.uname, member.gname, member.devmajor,
                           member.devminor, content))
        return result


ARCHIVES = {name: build(fmt) for name, fmt in
            [("gnu", tarfile.GNU_FORMAT), ("pax", tarfile.PAX_FORMAT)]}


def parse(data: bytes, cuts: list[int]) -> list[tuple]:
    recorder = Recorder()
    parser = TarStreamParser(recorder)
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        parser.feed(data[previous:cut])
        previous = cut
    parser.finish()
    assert parser.finished
    return recorder.entries


def test_headers_decode_like_tarfile() -> None:
    for data in ARCHIVES.values():
        assert parse(data, []) == expected_entries(data)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(ARCHIVES)), st.data())
def test_any_chunking_gives_the_same_entries(name: str, data: st.DataObject) -> None:
    archive = ARCHIVES[name]
    cuts = data.draw(st.lists(st.integers(0, len(archive)), max_size=40))
    assert parse(archive, cuts) == expected_entries(archive)


def test_byte_by_byte() -> None:
    archive = ARCHIVES["pax"]
    assert parse(archive, list(range(len(archive)))) == expected_entries(archive)
