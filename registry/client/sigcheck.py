"""Signature checking *during* a download, in a helper process fed through a pipe.

pysequoia verifies a file by mapping it into memory, which makes a 512 MiB image count 512 MiB
of resident memory, and it holds the GIL while it hashes, so it cannot run in a thread beside
the download. Fed through a pipe instead, it reads in small buffers: the helper process hashes
the bytes on the second core while this process decompresses and validates them, and memory
stays flat. The caller has already picked the trusted keys that name the signature's issuer
(registry.client.fetch.Fetcher.trusted_signers); the helper only says whether one of them made
a valid signature over exactly the bytes it was given.

    with StreamingVerifier(signature, keys, scratch_dir) as verifier:
        for chunk in stream: verifier.write(chunk)
        signer_fingerprint = verifier.result()      # raises FetchError when it does not verify
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from registry.signing import PublicKey

from .errors import FetchError


class StreamingVerifier:
    def __init__(self, signature: bytes, keys: list[PublicKey], scratch: Path) -> None:
        self._keys = keys
        self._scratch = Path(tempfile.mkdtemp(prefix="sigcheck-", dir=scratch))
        (self._scratch / "signature").write_bytes(signature)
        (self._scratch / "keys").write_bytes(b"".join(bytes(key.cert) for key in keys))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "registry.client.sigcheck", str(self._scratch / "signature"),
             str(self._scratch / "keys")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._broken = False

    def write(self, chunk: bytes) -> None:
        if self._broken or not chunk:
            return
        try:
            self._process.stdin.write(chunk)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self._broken = True  # the helper gave up early; result() reports why

    def result(self) -> str:
        """The signer's fingerprint, once every byte was written; FetchError otherwise."""
        try:
            self._process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        out = self._process.stdout.read()  # type: ignore[union-attr]  (a line at most)
        err = self._process.stderr.read()  # type: ignore[union-attr]
        self._process.wait()
        if self._process.returncode != 0:
            who = self._keys[0].describe() if self._keys else "an unknown key"
            reason = err.decode("utf-8", "replace").strip().splitlines()
            raise FetchError(f"bad signature by {who}: the data does not match the signature "
                             f"({reason[-1] if reason else 'verification failed'})")
        return out.decode().strip().upper()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass  # unflushed bytes for a helper that is gone: nothing to keep
        for path in self._scratch.iterdir():
            path.unlink(missing_ok=True)
        self._scratch.rmdir()

    def __enter__(self) -> StreamingVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main(signature_path: str, keys_path: str) -> int:
    """Verify stdin against the signature; print the signer's fingerprint (exit 0) or why not."""
    import pysequoia

    try:
        signature = pysequoia.Sig.from_bytes(Path(signature_path).read_bytes())
        certs = pysequoia.Cert.split_bytes(Path(keys_path).read_bytes())
        # A pipe cannot be mapped, so sequoia reads it in buffers: flat memory.
        result = pysequoia.verify(store=lambda _ids: certs, file="/dev/stdin",
                                  signature=signature)
    except Exception as error:  # pysequoia raises plain exceptions
        print(str(error).strip().splitlines()[0] if str(error).strip() else "invalid",
              file=sys.stderr)
        return 1
    valid = [str(sig.certificate) for sig in result.valid_sigs]
    if not valid:
        print("no valid signature", file=sys.stderr)
        return 1
    print(valid[0])
    return 0


if __name__ == "__main__":
    os.environ.pop("RUST_BACKTRACE", None)
    sys.exit(_main(sys.argv[1], sys.argv[2]))
