"""Writing ACIs: the one streaming writer (tar -> SHA-512 -> compressor -> temporary file ->
rename) that write_aci, the builder, docker2aci and the registry's OCI conversion all use.

Reproducible mode of write_aci (the default) makes the bytes depend on the content only: entries
sorted by name, mtimes fixed to SOURCE_DATE_EPOCH (or 0), owners 0:0 with empty names (unless
ownership is preserved), gzip headers without mtime or filename. (The gzip bytes also depend on
the deflate library compression.py found; the tar inside, and so the image ID, does not.)"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from registry.aci.compression import COMPRESSIONS, GZIP, compressor
from registry.aci.errors import ACIError
from registry.aci.layout import MANIFEST, ROOTFS
from registry.aci.manifest import ImageManifest
from registry.aci.pipeline import BackgroundHash
from registry.aci.reader import IMAGE_ID_PREFIX
from registry.aci.tarstream import BLOCKDEV, CHAR, REGULAR, TarEntry
from registry.progress import Progress, ProgressTask

COPY_BUFFER = 1 << 20
BLOCK_OUT = 256 << 10  # writes are handed to the compressing thread in pieces this large
QUEUE_DEPTH = 8  # pieces in flight: 2 MiB at most, whatever the image size
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE  # tar pads the archive to whole records, as tarfile and GNU tar do

Sink = Callable[[Any], object]


XATTR_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")


def header_from(entry: TarEntry, name: str, linkname: str | None = None) -> tarfile.TarInfo:
    """A header for the output copying a read entry (type, ownership, mode, times, device
    numbers, xattrs) under a new `name` (and, for links, `linkname`): how docker2aci and the
    builder move entries of other archives into an ACI."""
    info = tarfile.TarInfo(name)
    info.type = entry.type.encode()
    info.mode, info.uid, info.gid = entry.mode, entry.uid, entry.gid
    info.uname, info.gname = entry.uname, entry.gname
    # As tarfile reads them: a pax mtime may carry a fraction, the header's is whole seconds.
    info.mtime = entry.mtime if "mtime" in entry.pax else int(entry.mtime)
    info.size = entry.size if entry.type == REGULAR else 0
    info.linkname = entry.linkname if linkname is None else linkname
    if entry.type in (CHAR, BLOCKDEV):
        info.devmajor, info.devminor = entry.devmajor, entry.devminor
    # Keep extended attributes (file capabilities, SELinux labels); names are set anew.
    info.pax_headers = {k: v for k, v in entry.pax.items() if k.startswith(XATTR_PREFIXES)}
    return info


class ACIWriter:
    """Writes one ACI as a stream; `commit()` finishes it and returns the image ID.

    `out` is a path (written to a temporary sibling, fsynced and renamed into place by
    `commit()`) or a binary file object (written as is). Used as a context manager: leaving the
    block without `commit()` (an error anywhere) removes the temporary file, so a failed write
    leaves nothing behind. Entries are written in the order given, with the exact bytes
    tarfile would write (pax headers), so image IDs do not depend on which caller wrote them.
    """

    def __init__(self, out: str | os.PathLike[str] | BinaryIO, compression: str = GZIP) -> None:
        if compression not in COMPRESSIONS:
            raise ACIError(f"compression: {compression!r} is not one of"
                           f" {', '.join(COMPRESSIONS)}", reason="bad-compression")
        self.compression = compression
        self.image_id: str | None = None
        self._path: Path | None = None
        self._given: BinaryIO | None = None
        if isinstance(out, str | os.PathLike):
            self._path = Path(out)
        else:
            self._given = out
        self._temp: Path | None = None
        self._file: IO[bytes] | None = None
        self._compressor = compressor(compression)
        self._hash: BackgroundHash | None = None
        self.position = 0  # uncompressed bytes written
        self._open_size: int | None = None  # data bytes the current entry still expects
        self._buffer = bytearray()  # small writes (headers, padding) gathered into blocks
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._failure: BaseException | None = None
        self._worker: threading.Thread | None = None

    def __enter__(self) -> ACIWriter:
        # SHA-512 and the compressor (both release the GIL) run in helper threads, so they
        # overlap with each other and with whatever produces the tar (reading files,
        # decompressing layers); gzip's deflate, the costliest stage, is spread over threads of
        # its own (compression.ParallelGzip), so it uses whatever CPU the other stages leave.
        self._hash = BackgroundHash("sha512")
        self._worker = threading.Thread(target=self._run, name="aci-compress", daemon=True)
        self._worker.start()
        if self._path is None:
            self._file = self._given
            return self
        fd, name = tempfile.mkstemp(prefix=f".{self._path.name}.", suffix=".tmp",
                                    dir=self._path.parent)
        self._temp = Path(name)
        # mkstemp makes the file private; an ACI is an ordinary file, readable as umask allows.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        self._file = os.fdopen(fd, "wb")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop_worker()
        self._compressor.close()
        if self._temp is not None:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
            self._temp.unlink(missing_ok=True)
            self._temp = None

    # the byte stream

    def write(self, data: Any) -> None:
        """Uncompressed tar bytes: hashed (the image ID covers them), compressed, written.

        `data` must not change afterwards (bytes, or a memoryview of bytes, are passed to the
        helper thread without a copy; anything else is copied)."""
        size = len(data)
        self.position += size
        if size >= BLOCK_OUT:
            self._flush()
            if not (isinstance(data, bytes) or (isinstance(data, memoryview)
                                                and isinstance(data.obj, bytes))):
                data = bytes(data)
            # Slices of the caller's bytes (no copy), so at most QUEUE_DEPTH * BLOCK_OUT
            # bytes wait for the helper whatever the size of one write.
            view = memoryview(data)
            for start in range(0, size, BLOCK_OUT):
                self._hand_over(view[start:start + BLOCK_OUT])
            return
        self._buffer += data
        if len(self._buffer) >= BLOCK_OUT:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._hand_over(bytes(self._buffer))
            self._buffer.clear()

    def _hand_over(self, data: Any) -> None:
        if self._failure is not None:
            raise self._failure
        if self._worker is None or self._hash is None:
            raise RuntimeError("ACIWriter is used outside its `with` block")
        self._hash.update(data)
        self._queue.put(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # keep draining so the producer never blocks
            try:
                compressed = self._compressor.compress(data)
                if compressed:
                    assert self._file is not None
                    self._file.write(compressed)
            except BaseException as error:  # raised in the producer's thread
                self._failure = error

    def _stop_worker(self) -> str:
        """Stop both helpers; the SHA-512 of everything written ("" when already stopped)."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None
        hexdigest = ""
        if self._hash is not None:
            hexdigest = self._hash.close()
            self._hash = None
        return hexdigest

    # entries

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        """One entry; a regular file's `info.size` bytes are copied from `data`."""
        sink = self.begin(info)
        if info.isreg() and info.size:
            if data is None:
                raise ACIError(f"{info.name}: no data for a file of {info.size} bytes",
                               reason="bad-rootfs")
            remaining = info.size
            while remaining:
                chunk = data.read(min(COPY_BUFFER, remaining))
                if not chunk:
                    raise ACIError(f"{info.name}: shorter than its {info.size} bytes (changed"
                                   " while being written?)", reason="bad-rootfs")
                sink(chunk)
                remaining -= len(chunk)
        self.end()

    def begin(self, info: tarfile.TarInfo) -> Sink:
        """Write the entry's header; returns where its data goes (`end()` after the data)."""
        if self._open_size is not None:
            raise RuntimeError("ACIWriter.begin: the previous entry was not ended")
        self.write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
        self._open_size = info.size if info.isreg() else 0
        self._data_start = self.position
        return self.write

    def end(self) -> None:
        """Close the current entry: check its size, pad it to a whole block."""
        expected, self._open_size = self._open_size, None
        written = self.position - self._data_start
        if expected is None or written != expected:
            raise ACIError(f"tar entry: {written} data bytes written, {expected} announced",
                           reason="bad-rootfs")
        if written % BLOCK:
            self.write(bytes(BLOCK - written % BLOCK))

    @property
    def entry_open(self) -> bool:
        """Whether `begin` was called and `end` not yet."""
        return self._open_size is not None

    def add_manifest(self, manifest: bytes, *, mtime: int = 0) -> None:
        """The `manifest` entry and the `rootfs` directory, owned by 0:0 (docker2aci's head)."""
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.type, info.mtime = len(manifest), 0o644, tarfile.REGTYPE, mtime
        self.add(info, io.BytesIO(manifest))
        root = tarfile.TarInfo(ROOTFS)
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, mtime
        self.add(root)

    def commit(self) -> str:
        """End the archive (two zero blocks, padded to a record), flush, publish; image ID."""
        self.write(bytes(2 * BLOCK))
        if self.position % RECORD:
            self.write(bytes(RECORD - self.position % RECORD))
        self._flush()
        hexdigest = self._stop_worker()
        if self._failure is not None:
            raise self._failure
        assert self._file is not None
        self._file.write(self._compressor.flush())
        self.image_id = IMAGE_ID_PREFIX + hexdigest
        if self._temp is not None and self._path is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._path)
            self._temp = None
        return self.image_id


def _manifest_bytes(manifest: ImageManifest | dict[str, Any] | bytes | str) -> bytes:
    if isinstance(manifest, ImageManifest):
        return manifest.to_json()
    if isinstance(manifest, dict):
        return ImageManifest.from_dict(manifest).to_json()
    ImageManifest.from_json(manifest)  # validate; keep the author's bytes
    return manifest.encode() if isinstance(manifest, str) else bytes(manifest)


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not value:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        raise ACIError(f"SOURCE_DATE_EPOCH: {value!r} is not a whole number of seconds",
                       reason="bad-environment") from None


class _TreeWriter:
    """Adds rootfs/ depth first, siblings sorted by name, hard links kept as links."""

    def __init__(self, writer: ACIWriter, *, reproducible: bool,
                 preserve_ownership: bool, task: ProgressTask | None = None) -> None:
        self._writer = writer
        self._task = task
        # Only its gettarinfo is used (stat -> header, hard links found by inode); it never
        # writes: every byte goes through the ACIWriter.
        self._archive = tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)
        self._reproducible = reproducible
        self._preserve_ownership = preserve_ownership
        self._mtime = source_date_epoch() if reproducible else None

    def normalized(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        if self._mtime is not None:
            info.mtime = self._mtime
        else:
            info.mtime = int(info.mtime)
        if not self._preserve_ownership:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
        return info

    def add_tree(self, root: Path) -> None:
        info = self.normalized(self._archive.gettarinfo(str(root), ROOTFS))
        self._writer.add(info)
        self._add_children(root, ROOTFS)

    def _add_children(self, directory: Path, arcdir: str) -> None:
        try:
            names = sorted(os.listdir(directory), key=os.fsencode)
        except OSError as error:
            raise ACIError(f"{directory}: cannot list ({error.strerror})",
                           reason="bad-rootfs") from None
        for name in names:
            path = directory / name
            arcname = f"{arcdir}/{name}"
            try:
                info = self._archive.gettarinfo(str(path), arcname)
            except OSError as error:
                raise ACIError(f"{path}: cannot read ({error.strerror})",
                               reason="bad-rootfs") from None
            if info is None:
                continue  # a socket: tar skips those too
            self.normalized(info)
            if info.isreg():
                self._add_file(path, info)
            else:
                self._writer.add(info)
            if info.isdir():
                self._add_children(path, arcname)

    def _add_file(self, path: Path, info: tarfile.TarInfo) -> None:
        try:
            with open(path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size != info.size:
                    raise ACIError(f"{path}: changed while being written", reason="bad-rootfs")
                self._writer.add(info, handle)
            if self._task is not None:
                self._task.update(info.size)
        except OSError as error:
            raise ACIError(f"{path}: cannot read ({error.strerror})", reason="bad-rootfs") \
                from None


def write_aci(manifest: ImageManifest | dict[str, Any] | bytes | str,
              rootfs_dir: str | os.PathLike[str], out: str | os.PathLike[str] | BinaryIO, *,
              compression: str = GZIP, reproducible: bool = True,
              preserve_ownership: bool = False, progress: Progress | None = None) -> str:
    """Write an ACI of `manifest` and the tree `rootfs_dir`; returns its image ID.

    `progress` (registry.progress) gets one task counting the file bytes written.

    `out` is a path (written to a temporary sibling, renamed into place when complete) or a
    binary file object. Raises ManifestError for a bad manifest, ACIError for the rest.
    """
    if compression not in COMPRESSIONS:
        raise ACIError(f"compression: {compression!r} is not one of {', '.join(COMPRESSIONS)}",
                       reason="bad-compression")
    data = _manifest_bytes(manifest)
    root = Path(rootfs_dir)
    if not root.is_dir() or root.is_symlink():
        raise ACIError(f"{root}: rootfs is not a directory", reason="bad-rootfs")
    label = Path(out).name if isinstance(out, str | os.PathLike) else "writing ACI"
    task = progress(label, None) if progress is not None else None
    with contextlib.ExitStack() as stack, ACIWriter(out, compression) as writer:
        if task is not None:
            stack.callback(task.close)
        tree = _TreeWriter(writer, reproducible=reproducible,
                           preserve_ownership=preserve_ownership, task=task)
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.type = len(data), 0o644, tarfile.REGTYPE
        if not reproducible:
            info.mtime = int(os.stat(root).st_mtime)
        tree.normalized(info)
        writer.add(info, io.BytesIO(data))
        tree.add_tree(root)
        return writer.commit()
