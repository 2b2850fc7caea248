"""A push parser for tar streams (POSIX ustar, pax and GNU long names), fed decompressed
chunks as they arrive. It never buffers file contents: the data of each entry goes to the
sink its handler returns, or is skipped. tarfile would need a file-like object and a copy
of every block; this keeps the hashing pass at the speed of the decompressor."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Protocol

from registry.aci.errors import ArchiveError

BLOCK = 512
REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = "0", "1", "2", "3", "4", "5", "6"
_CONTIGUOUS = "7"  # a regular file to everyone but a few old systems
_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK = "x", "g", "L", "K"
_META_TYPES = {_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK}
ENTRY_TYPES = {REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO}
TYPE_NAMES = {REGULAR: "regular file", HARDLINK: "hard link", SYMLINK: "symlink",
              CHAR: "character device", BLOCKDEV: "block device", DIRECTORY: "directory",
              FIFO: "fifo"}
MAX_META_SIZE = 1 << 20  # pax records and GNU long names: generous, but bounded
_ZERO_BLOCK = bytes(BLOCK)
_NO_PAX: dict[str, str] = {}  # shared by entries without pax records; never mutated

Sink = Callable[[memoryview], object]


class TarEntry:
    """One archive member as its headers (ustar + pax + GNU) describe it.

    name, type, size and linkname are decoded at once (every reader needs them); ownership,
    mode, times and device numbers only when asked for, since hashing-only passes never do.
    """

    __slots__ = ("name", "type", "size", "linkname", "pax", "_block", "__dict__")

    def __init__(self, name: str, type: str, size: int, linkname: str = "",
                 pax: dict[str, str] | None = None, block: bytes = bytes(BLOCK)) -> None:
        self.name = name
        self.type = type
        self.size = size
        self.linkname = linkname
        self.pax = pax if pax is not None else _NO_PAX
        self._block = block

    def __repr__(self) -> str:
        return f"TarEntry({self.name!r}, type={self.type!r}, size={self.size})"

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type!r}")

    @cached_property
    def mode(self) -> int:
        return _octal(self._block[100:108], "mode") & 0o7777

    @cached_property
    def uid(self) -> int:
        return self._pax_int("uid", _octal(self._block[108:116], "uid"))

    @cached_property
    def gid(self) -> int:
        return self._pax_int("gid", _octal(self._block[116:124], "gid"))

    @cached_property
    def mtime(self) -> float:
        try:
            return float(self.pax["mtime"]) if "mtime" in self.pax \
                else float(_octal(self._block[136:148], "mtime"))
        except ValueError:
            raise ArchiveError(f"{self.name}: bad mtime in pax header", reason="bad-header") \
                from None

    @cached_property
    def uname(self) -> str:
        return self.pax.get("uname", _text(self._block[265:297]))

    @cached_property
    def gname(self) -> str:
        return self.pax.get("gname", _text(self._block[297:329]))

    @cached_property
    def devmajor(self) -> int:
        return _octal(self._block[329:337], "devmajor")

    @cached_property
    def devminor(self) -> int:
        return _octal(self._block[337:345], "devminor")

    def _pax_int(self, key: str, default: int) -> int:
        if key not in self.pax:
            return default
        try:
            return int(self.pax[key])
        except ValueError:
            raise ArchiveError(f"{self.name}: bad {key} in pax header", reason="bad-header") \
                from None


class EntryHandler(Protocol):
    def begin(self, entry: TarEntry) -> Sink | None:
        """Called at each entry's header; returns where its data goes (None: skipped)."""

    def end(self, entry: TarEntry) -> None:
        """Called once all of the entry's data went to its sink."""


def _octal(field_bytes: bytes, what: str) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field_bytes and field_bytes[0] & 0x80:
        value = int.from_bytes(field_bytes[1:], "big")
        if field_bytes[0] & 0x40:  # negative base-256
            value -= 1 << (8 * (len(field_bytes) - 1))
        return value
    text = field_bytes.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError(f"tar header: bad {what} field {text[:20]!r}",
                           reason="bad-header") from None


def _text(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _checksum_ok(header: bytes) -> bool:
    stored = header[148:156].split(b"\0", 1)[0].strip(b" ")
    try:
        expected = int(stored, 8)
    except ValueError:
        return False
    # The checksum field itself counts as eight spaces (8 * 32).
    unsigned = sum(header) - sum(header[148:156]) + 256
    if expected == unsigned:
        return True
    # Some old tars summed signed chars; only then count the high bytes (slow in Python).
    blanked = header[:148] + b" " * 8 + header[156:]
    return expected == unsigned - 256 * sum(1 for byte in blanked if byte >= 128)


def parse_pax(data: bytes) -> dict[str, str]:
    """pax extended header records: `LENGTH KEY=VALUE\\n`, LENGTH counting the whole record."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if data[position:].strip(b"\0") == b"":
            break
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            raise ArchiveError("tar: malformed pax record", reason="bad-header") from None
        record = data[space + 1: position + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError("tar: malformed pax record", reason="bad-header")
        key, value = record[:-1].split(b"=", 1)
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarStreamParser:
    """Feed it the uncompressed tar stream chunk by chunk; `finish()` at EOF.

    Entries arrive at `handler.begin` with pax and GNU long-name headers already applied.
    After the end-of-archive marker (two zero blocks) further bytes are ignored, as tar does.
    """

    def __init__(self, handler: EntryHandler, *, allow_empty: bool = False) -> None:
        self._handler = handler
        # Layers may hold nothing at all (Docker writes an end-of-archive marker, or no byte);
        # an ACI never may.
        self._allow_empty = allow_empty
        self._header = bytearray()
        self._entry: TarEntry | None = None
        self._sink: Sink | None = None
        self._remaining = 0      # data bytes of the current entry still to come
        self._padding = 0        # zero padding after them
        self._meta: bytearray | None = None
        self._meta_type = ""
        self._pending_pax: dict[str, str] = {}
        self._global_pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._zero_blocks = 0
        self._seen_header = False
        self.finished = False    # the end-of-archive marker was seen
        self.entries = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        position, size = 0, len(view)
        while position < size:
            if self.finished:
                return
            if self._remaining:
                take = min(self._remaining, size - position)
                piece = view[position:position + take]
                if self._meta is not None:
                    self._meta += piece
                elif self._sink is not None:
                    self._sink(piece)
                self._remaining -= take
                position += take
                if not self._remaining:
                    self._data_done()
                continue
            if self._padding:
                take = min(self._padding, size - position)
                self._padding -= take
                position += take
                continue
            need = BLOCK - len(self._header)
            if not self._header and size - position >= BLOCK:
                block = bytes(view[position:position + BLOCK])
                position += BLOCK
            else:
                take = min(need, size - position)
                self._header += view[position:position + take]
                position += take
                if len(self._header) < BLOCK:
                    continue
                block, self._header = bytes(self._header), bytearray()
            self._on_header(block)

    def finish(self) -> None:
        """The stream ended: anything but a clean stop between entries is a truncation."""
        if self.finished:
            return
        if self._header or self._remaining or self._padding or self._entry is not None \
                or self._meta is not None:
            raise ArchiveError("tar: archive ends in the middle of an entry (truncated)",
                               reason="truncated")
        if not self._seen_header and not self._allow_empty:
            raise ArchiveError("tar: no entries (empty archive)", reason="empty")
        if self._pending_pax or self._long_name is not None or self._long_link is not None:
            raise ArchiveError("tar: archive ends after an extended header (truncated)",
                               reason="truncated")
        self.finished = True

    # -- headers

    def _on_header(self, block: bytes) -> None:
        if block == _ZERO_BLOCK:
            if not self._seen_header and not self._allow_empty:
                raise ArchiveError("not a tar archive (starts with zeros)", reason="not-tar")
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self.finished = True
            return
        if self._zero_blocks:
            raise ArchiveError("tar: data after an end-of-archive block", reason="bad-header")
        if not _checksum_ok(block):
            if not self._seen_header:
                raise ArchiveError("not a tar archive (no valid tar header)", reason="not-tar")
            raise ArchiveError(f"tar: bad header checksum after entry {self.entries}",
                               reason="bad-header")
        self._seen_header = True
        type_flag = chr(block[156]) if block[156] else REGULAR
        size = _octal(block[124:136], "size")
        if size < 0:
            raise ArchiveError("tar header: negative size", reason="bad-header")
        if type_flag in _META_TYPES:
            if size > MAX_META_SIZE:
                raise ArchiveError(f"tar: extended header of {size} bytes is too large",
                                   reason="bad-header")
            self._meta, self._meta_type = bytearray(), type_flag
            self._start_data(size)
            return
        entry = self._entry_from(block, type_flag, size)
        if entry.type not in ENTRY_TYPES:
            raise ArchiveError(f"{entry.name}: unsupported tar entry type {entry.type!r}",
                               reason="unsupported-entry")
        if entry.type != REGULAR:
            entry.size = 0  # links, directories, devices, fifos: header only, as tar reads them
        self.entries += 1
        self._entry = entry
        self._sink = self._handler.begin(entry)
        self._start_data(entry.size)

    def _entry_from(self, block: bytes, type_flag: str, size: int) -> TarEntry:
        magic = block[257:263]
        name = _text(block[0:100])
        if magic == b"ustar\0":  # POSIX: a prefix field extends the name
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        pax = {**self._global_pax, **self._pending_pax} \
            if self._global_pax or self._pending_pax else _NO_PAX
        self._pending_pax = {}
        if self._long_name is not None:
            name, self._long_name = self._long_name, None
        linkname = _text(block[157:257])
        if self._long_link is not None:
            linkname, self._long_link = self._long_link, None
        if type_flag == _CONTIGUOUS:
            type_flag = REGULAR
        entry = TarEntry(pax.get("path", name), type_flag, size,
                         pax.get("linkpath", linkname), pax, block)
        if pax:
            self._apply_pax(entry, pax)
        return entry

    @staticmethod
    def _apply_pax(entry: TarEntry, pax: dict[str, str]) -> None:
        if any(key.startswith("GNU.sparse") for key in pax):
            raise ArchiveError(f"{entry.name}: sparse files are not supported",
                               reason="unsupported-entry")
        if "size" in pax:
            try:
                entry.size = int(pax["size"])
            except ValueError:
                raise ArchiveError(f"{entry.name}: bad size in pax header",
                                   reason="bad-header") from None
            if entry.size < 0:
                raise ArchiveError(f"{entry.name}: negative size", reason="bad-header")

    # -- data

    def _start_data(self, size: int) -> None:
        self._remaining = size
        self._padding = -size % BLOCK
        if not size:
            self._data_done()

    def _data_done(self) -> None:
        if self._meta is not None:
            data, kind = bytes(self._meta), self._meta_type
            self._meta = None
            if kind == _PAX:
                self._pending_pax.update(parse_pax(data))
            elif kind == _PAX_GLOBAL:
                self._global_pax.update(parse_pax(data))
            elif kind == _GNU_LONGNAME:
                self._long_name = _text(data)
            else:
                self._long_link = _text(data)
            return
        entry, self._entry, self._sink = self._entry, None, None
        if entry is not None:
            self._handler.end(entry)
