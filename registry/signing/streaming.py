"""Verifying a detached signature over data that arrives in pieces (a download, an S3 object).

    with StreamingVerifier(signature, trusted_keys) as verifier:   # unknown signer: fails here,
        for chunk in response.iter_content(1 << 20):               # before any byte is fetched
            verifier.update(chunk)
            ...  # hash, decompress, write the same chunk
        signer = verifier.finish()                                  # SigningError if tampered

pysequoia verifies only whole byte strings or files and holds the GIL while doing so, so the
bytes are piped to a small child process (`_worker.py`) that lets pysequoia stream them: the
signature check runs on another core in the same pass as the download, in bounded memory.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from .detached import read_signature, select_signers
from .errors import SigningError
from .keys import PublicKey, export_public_keys

_WORKER = Path(__file__).with_name("_worker.py")
CHUNK = 1 << 20


class StreamingVerifier:
    """Feed the signed bytes with `update()`, then `finish()` returns the signer."""

    def __init__(self, signature: bytes | str, keys: Iterable[PublicKey]) -> None:
        sig = read_signature(signature)
        self._signers = select_signers(sig, list(keys))
        self._scratch = tempfile.TemporaryDirectory(prefix="pyrkt-verify-")
        signature_file = Path(self._scratch.name, "signature")
        keys_file = Path(self._scratch.name, "keys")
        signature_file.write_bytes(bytes(sig))
        keys_file.write_text(export_public_keys(self._signers))
        # stderr goes to a file: a chatty worker can then never block on a full pipe.
        self._stderr_file = Path(self._scratch.name, "stderr")
        with open(self._stderr_file, "wb") as stderr:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, str(_WORKER), str(signature_file), str(keys_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        # A 1 MiB pipe (Linux's default cap for unprivileged processes; the default is 64 KiB):
        # a 1 MiB update is then one write and one wake-up of the worker, not 16. Refused (a
        # user over the kernel's pipe-buffer quota), the default pipe works, only slower.
        assert self._process.stdin is not None
        try:
            fcntl.fcntl(self._process.stdin.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)
        except (OSError, AttributeError):  # AttributeError: a Python without F_SETPIPE_SZ
            pass
        self.bytes_seen = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        process = self._running()
        assert process.stdin is not None
        try:
            process.stdin.write(chunk)
        except BrokenPipeError:
            # The worker stopped early (it reports why in finish()); keep the caller's loop simple.
            return
        self.bytes_seen += len(chunk)

    def finish(self) -> PublicKey:
        """The signer among the keys given; SigningError if the bytes do not match."""
        process = self._running()
        try:
            out, _ = process.communicate()  # closes stdin: the worker sees the end of the data
            err = self._stderr_file.read_bytes()
        finally:
            self._process = None
            self._scratch.cleanup()
        line = out.decode("utf-8", "replace").strip()
        if process.returncode == 0 and line.startswith("OK "):
            fingerprint = line[3:]
            for key in self._signers:
                if key.fingerprint == fingerprint:
                    return key
        if line.startswith("ERR "):
            raise SigningError(f"bad signature by {self._signers[0].describe()}: the data does not "
                               f"match the signature or the key is not valid for it ({line[4:]})")
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise SigningError("signature check failed: the verifier process "
                           f"exited with {process.returncode}: {detail[-1] if detail else 'no output'}")

    def abort(self) -> None:
        """Stop without a verdict (e.g. the download failed)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.communicate()
        self._scratch.cleanup()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SigningError("this verifier has already finished")
        return self._process

    def __enter__(self) -> StreamingVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_process", None) is not None:
            self.abort()


def verify_stream(signature: bytes | str, stream: BinaryIO, keys: Iterable[PublicKey]) -> PublicKey:
    """verify_detached for a readable binary stream, read in chunks to its end."""
    with StreamingVerifier(signature, keys) as verifier:
        while chunk := stream.read(CHUNK):
            verifier.update(chunk)
        return verifier.finish()
