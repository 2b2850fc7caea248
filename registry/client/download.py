"""HTTP for fetching: small files (signatures, keys) and resumable, cache-aware image downloads.

An image download is a stream the caller consumes once (`Download.stream`): it starts with the
bytes a previous, interrupted attempt left in the store's `tmp/partial-<hash>` file (asked again
with `Range` + `If-Range`), then the network bytes, which are appended to that same file as they
pass. When the connection breaks, the partial file stays for the next attempt; otherwise the
caller removes it (`Download.discard`) or publishes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests

from .errors import FetchError
from .insecure import InsecureOptions
from .streams import CHUNK, WriteBehind

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them.

SMALL_LIMIT = 4 * 1024 * 1024  # signatures and key rings are a few KiB
DEFAULT_TIMEOUT = 60.0


class DownloadInterrupted(FetchError):
    """The connection broke mid-download; the bytes so far are kept to resume next time."""


class DownloadRefused(FetchError):
    """The server answered the image request with an error status (`.status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_scheme(url: str, insecure: InsecureOptions, what: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "http" and not insecure.allow_http:
        raise FetchError(f"refusing to fetch {what} over plain HTTP: {url} "
                         f"(use https, or --insecure-options=http to allow it)")
    if scheme not in ("http", "https"):
        raise FetchError(f"cannot fetch {what} from {url}: only https (and http when allowed)")


def _network_error(url: str, error: Exception) -> FetchError:
    from registry.discovery import network_cause, tls_fix, tls_problem

    if isinstance(error, requests.exceptions.SSLError):
        host = urlsplit(url).hostname
        problem = tls_problem(error, host)
        return FetchError(f"TLS error for {url}: {problem.text}; "
                          f"{tls_fix(problem.kind, host=host)}")
    return FetchError(f"cannot reach {url}: {network_cause(error)}")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) < 300 else line[:297] + "..."


def _refuse_http_redirect(response: requests.Response, insecure: InsecureOptions, what: str) -> None:
    for hop in [*response.history, response]:
        check_scheme(hop.url, insecure, what)


@dataclass
class Small:
    status: int
    body: bytes
    url: str
    retry_after: float | None = None


def get_small(session: requests.Session, url: str, insecure: InsecureOptions, what: str,
              timeout: float = DEFAULT_TIMEOUT) -> Small:
    """GET a small document (a signature, a key ring); any status is returned to the caller."""
    check_scheme(url, insecure, what)
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            _refuse_http_redirect(response, insecure, what)
            body = bytearray()
            if response.status_code == 200:
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > SMALL_LIMIT:
                        raise FetchError(f"{what} at {url} is larger than {SMALL_LIMIT} bytes")
            return Small(response.status_code, bytes(body), response.url,
                         _retry_after(response.headers.get("Retry-After")))
    except requests.exceptions.RequestException as error:
        raise _network_error(url, error) from error


def probe(session: requests.Session, url: str, insecure: InsecureOptions, what: str,
          timeout: float = DEFAULT_TIMEOUT) -> int:
    """The status a GET of `url` answers with; the body is not read (a one-byte Range)."""
    check_scheme(url, insecure, what)
    headers = {"Accept-Encoding": "identity", "Range": "bytes=0-0"}
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            _refuse_http_redirect(response, insecure, what)
            return response.status_code
    except requests.exceptions.RequestException as error:
        raise _network_error(url, error) from error


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def max_age_of(cache_control: str | None) -> int:
    """Seconds of freshness from Cache-Control (0 for no-cache/no-store or none given)."""
    if not cache_control:
        return 0
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-cache" in directives or "no-store" in directives:
        return 0
    for directive in directives:
        match = re.fullmatch(r"max-age=\"?(\d+)\"?", directive)
        if match:
            return int(match.group(1))
    return 0


@dataclass
class Download:
    """One image download in progress (or a 304 answer: `not_modified`)."""

    url: str
    partial: Path
    not_modified: bool = False
    etag: str | None = None
    max_age: int = 0
    total: int | None = None  # the full file size when known
    resumed_from: int = 0
    resumable: bool = True  # False: a private file (another process holds the shared one)
    _response: requests.Response | None = field(default=None, repr=False)
    _meta: Path | None = field(default=None, repr=False)
    _lock: BinaryIO | None = field(default=None, repr=False)

    def stream(self, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """Every byte of the file: the kept prefix first, then the network (appended as read)."""
        if self.resumed_from:
            with self.partial.open("rb") as kept:
                while chunk := kept.read(CHUNK):
                    if on_bytes:
                        on_bytes(len(chunk))
                    yield chunk
        assert self._response is not None
        received = self.resumed_from
        with self.partial.open("ab") as sink, self._response:
            behind = WriteBehind(sink.fileno())
            try:
                while True:
                    chunk = self._response.raw.read(CHUNK, decode_content=False)
                    if not chunk:
                        break
                    sink.write(chunk)  # a chunk larger than the buffer goes straight through
                    received += len(chunk)
                    behind.wrote(len(chunk))
                    if on_bytes:
                        on_bytes(len(chunk))
                    yield chunk
            except Exception as error:  # urllib3/requests/socket errors: all mean "cut off"
                sink.flush()
                raise DownloadInterrupted(
                    f"download of {self.url} was interrupted after {received} bytes "
                    f"({_first_line(error)}); run the same fetch again to resume") from error
            finally:
                behind.close()
            sink.flush()
        if self.total is not None and received < self.total:
            raise DownloadInterrupted(f"download of {self.url} ended after {received} of "
                                      f"{self.total} bytes; run the same fetch again to resume")

    def discard(self) -> None:
        """Forget the partial file (after a refusal, or once the image is stored)."""
        self.partial.unlink(missing_ok=True)
        if self._meta is not None:
            self._meta.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        """Keep the partial file for a later resume (only when it is the shared one)."""
        if self._response is not None:
            self._response.close()
        if not self.resumable:
            self.partial.unlink(missing_ok=True)
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None


def partial_paths(tmp_dir: Path, url: str) -> tuple[Path, Path]:
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return tmp_dir / f"partial-{digest}.aci", tmp_dir / f"partial-{digest}.json"


def release_lock(lock: BinaryIO) -> None:
    """Remove the lock file, then release it: nothing stays in `locks/` after a fetch, refused
    or not. Removed while still held, so a process that opened the old file and gets its lock
    afterwards sees the name gone and takes a new one (`_claim`)."""
    try:
        os.unlink(lock.name)
    except OSError:
        pass
    lock.close()  # releases the flock


def _claim(tmp_dir: Path, url: str, lock_dir: Path) -> tuple[Path, Path | None, BinaryIO | None]:
    """The shared partial file of `url` (locked for this process), or a private one when
    another process is downloading the same URL right now."""
    partial, meta = partial_paths(tmp_dir, url)
    lock_path = lock_dir / partial.with_suffix(".lock").name
    while True:
        lock = open(lock_path, "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            handle = tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="private-", suffix=".aci",
                                                 delete=False)
            handle.close()
            return Path(handle.name), None, None
        try:
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(lock.fileno()).st_ino:
            return partial, meta, lock
        lock.close()  # its holder removed it meanwhile: lock the new one


def start_download(session: requests.Session, url: str, tmp_dir: Path, insecure: InsecureOptions,
                   *, etag: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                   lock_dir: Path | None = None) -> Download:
    """Send the image request: conditional on `etag`, resuming a kept partial file if any."""
    check_scheme(url, insecure, "the image")
    partial, shared_meta, lock = _claim(tmp_dir, url, lock_dir or tmp_dir)
    try:
        return _start(session, url, partial, shared_meta, lock, etag, timeout, insecure)
    except BaseException:
        if lock is not None:
            release_lock(lock)
        if shared_meta is None:
            partial.unlink(missing_ok=True)
        raise


def _start(session: requests.Session, url: str, partial: Path, shared_meta: Path | None,
           lock: BinaryIO | None, etag: str | None, timeout: float,
           insecure: InsecureOptions) -> Download:
    resumable = shared_meta is not None
    meta = shared_meta or partial.with_suffix(".json")
    headers = {"Accept-Encoding": "identity"}
    kept = partial.stat().st_size if partial.exists() and resumable else 0
    validator = None
    if kept and meta.exists():
        try:
            validator = json.loads(meta.read_text()).get("validator")
        except (OSError, ValueError):
            validator = None
    if kept and validator:
        headers["Range"] = f"bytes={kept}-"
        headers["If-Range"] = validator
    else:
        kept = 0
    if etag:
        headers["If-None-Match"] = etag
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.RequestException as error:
        raise _network_error(url, error) from error
    try:
        _refuse_http_redirect(response, insecure, "the image")
    except FetchError:
        response.close()
        raise
    status = response.status_code
    max_age = max_age_of(response.headers.get("Cache-Control"))
    new_etag = response.headers.get("ETag")
    if status == 304:
        response.close()
        return Download(url, partial, not_modified=True, etag=new_etag or etag, max_age=max_age,
                        resumable=resumable, _lock=lock)
    if status == 206 and kept and _content_range_start(response) == kept:
        total = _content_range_total(response)
    elif status == 200:
        kept = 0
        partial.unlink(missing_ok=True)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    else:
        response.close()
        if status == 416 and kept:  # the kept bytes do not fit the file any more: start over
            partial.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return _start(session, url, partial, shared_meta, lock, etag, timeout, insecure)
        raise DownloadRefused(f"cannot download the image from {url}: HTTP {status}", status)
    validator = new_etag or response.headers.get("Last-Modified")
    if validator and resumable:
        meta.write_text(json.dumps({"url": url, "validator": validator}))
    else:
        meta.unlink(missing_ok=True)
    partial.touch()
    return Download(url, partial, etag=new_etag, max_age=max_age, total=total,
                    resumed_from=kept, resumable=resumable, _response=response,
                    _meta=meta if resumable else None, _lock=lock)


def _content_range_start(response: requests.Response) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _content_range_total(response: requests.Response) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


class ChunkReader:
    """A file-like reader over byte chunks (what read_aci consumes): an iterator, or anything
    iterable with a `close` (registry.aci.pipeline.Prefetch), closed with the reader."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._source = chunks
        self._chunks = iter(chunks)
        self._buffer = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._buffer[self._offset:] + b"".join(self._chunks)
            self._buffer, self._offset = b"", 0
            return data
        while self._offset >= len(self._buffer):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._buffer, self._offset = chunk, 0
        if self._offset == 0 and size >= len(self._buffer):
            data = self._buffer  # the whole chunk: no copy
        else:
            # a slice of what is asked for only: slicing off the rest each time copied it
            # again at every read (1 MiB chunks read 256 KiB at a time: 2.5 copies)
            data = self._buffer[self._offset:self._offset + size]
        self._offset += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        close = getattr(self._source, "close", None) or getattr(self._chunks, "close", None)
        if close:
            close()


def wait_for(delay: float | None, attempt: int) -> None:
    time.sleep(min(delay if delay is not None else 0.5 * (attempt + 1), 5.0))

