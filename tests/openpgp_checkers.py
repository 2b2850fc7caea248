"""Four independent judges of a key block and a detached signature, for the rkt-compatibility tests.

- `gpg_verify`: GnuPG in a throw-away home; returns the signer's primary fingerprint.
- `sq_verify`: Sequoia's command line (Debian's `sq`); returns the signer's fingerprint line.
- `go_verify` / `go_read_keys`: a small program on Go's golang.org/x/crypto/openpgp (Debian's
  golang-golang-x-crypto-dev), doing what rkt's keystore does: ReadArmoredKeyRing, then
  CheckArmoredDetachedSignature. Built offline in GOPATH mode as actool is, cached under the
  test cache by a hash of its source.
- `packet_problems`: `gpg --list-packets` read against the rules of the x/crypto/openpgp copy
  that rkt v1.30.0 vendors (vendor/golang.org/x/crypto/openpgp/packet/): only v4 packets, only
  the algorithms it parses, and no critical subpacket outside 2, 3, 9, 11, 16, 21, 22, 25, 27,
  29. Debian's newer x/crypto knows subpacket 32, so the Go program alone would accept keys
  rkt refuses: this check is what pins rkt 1.x.

A missing tool fails the test (CI installs gnupg, sq, golang-go and golang-golang-x-crypto-dev).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))
GOVERIFY_SOURCE = REPO_ROOT / "tests" / "signing" / "goverify" / "main.go"
X_CRYPTO = Path("/usr/share/gocode/src/golang.org/x/crypto/openpgp")

RKT_SUBPACKETS = frozenset({2, 3, 9, 11, 16, 21, 22, 25, 27, 29})
RKT_KEY_ALGORITHMS = frozenset({1, 2, 3, 16, 17, 18, 19})
RKT_SIGNATURE_ALGORITHMS = frozenset({1, 3, 17, 19})
RKT_HASHES = frozenset({1, 2, 3, 8, 9, 10, 11})
RKT_CURVES = ("nistp256", "nistp384", "nistp521")


def _need(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} missing: apt-get install {package}")
    return found


def _write(directory: Path, name: str, data: bytes | str) -> Path:
    path = directory / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def gpg_verify(keys: bytes | str, payload: Path, signature: bytes | str) -> str:
    """The primary fingerprint gpg reports for a good signature (AssertionError otherwise)."""
    gpg = _need("gpg", "gnupg")
    with tempfile.TemporaryDirectory(prefix="pyrkt-gpg-") as scratch:
        home = Path(scratch, "home")
        home.mkdir(mode=0o700)
        env = dict(os.environ, GNUPGHOME=str(home))
        imported = subprocess.run([gpg, "--batch", "--import", str(_write(Path(scratch), "k.asc", keys))],
                                  env=env, capture_output=True, text=True, errors="replace", timeout=60)
        assert imported.returncode == 0, imported.stderr
        result = subprocess.run(
            [gpg, "--batch", "--status-fd", "1", "--verify",
             str(_write(Path(scratch), "s.asc", signature)), str(payload)],
            env=env, capture_output=True, text=True, errors="replace", timeout=120)
    assert result.returncode == 0, f"gpg --verify: {result.stdout}{result.stderr}"
    [validsig] = [line.split() for line in result.stdout.splitlines()
                  if line.startswith("[GNUPG:] VALIDSIG ")]
    return validsig[-1].upper()


def sq_verify(keys: bytes | str, payload: Path, signature: bytes | str) -> str:
    """The key ID sq names for a good detached signature over `payload` by a key in `keys`."""
    sq = _need("sq", "sq")
    with tempfile.TemporaryDirectory(prefix="pyrkt-sq-") as scratch:
        result = subprocess.run(
            [sq, "verify", "--signer-cert", str(_write(Path(scratch), "k.asc", keys)),
             "--detached", str(_write(Path(scratch), "s.asc", signature)), str(payload)],
            capture_output=True, text=True, errors="replace", timeout=120)
    assert result.returncode == 0, f"sq verify: {result.stdout}{result.stderr}"
    assert "1 good signature" in result.stderr, result.stderr
    found = re.search(r"Good signature from ([0-9A-F]{16})", result.stderr)
    assert found, result.stderr
    return found[1]


def go_verifier() -> Path:
    """The Go program, built once per source version into the test cache."""
    _need("go", "golang-go")
    if not X_CRYPTO.is_dir():
        pytest.fail("Go's x/crypto/openpgp missing: apt-get install golang-golang-x-crypto-dev")
    digest = hashlib.sha256(GOVERIFY_SOURCE.read_bytes()).hexdigest()[:12]
    target = CACHE_DIR / f"goverify-{digest}"
    if not target.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOPROXY="off",
                   GOFLAGS="", GOCACHE=str(CACHE_DIR / "gocache"))
        built = subprocess.run(["go", "build", "-o", str(partial), str(GOVERIFY_SOURCE)],
                               env=env, capture_output=True, text=True, errors="replace", timeout=300)
        assert built.returncode == 0, built.stderr
        os.replace(partial, target)
    return target


def go_read_keys(keys: bytes | str) -> list[str]:
    """Fingerprints of the keys x/crypto/openpgp's ReadArmoredKeyRing reads, in order."""
    with tempfile.TemporaryDirectory(prefix="pyrkt-go-") as scratch:
        result = subprocess.run([str(go_verifier()), "keys", str(_write(Path(scratch), "k.asc", keys))],
                                capture_output=True, text=True, errors="replace", timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def go_verify(keys: bytes | str, payload: Path, signature: bytes | str, *,
              expect_ok: bool = True) -> str:
    """The signer's primary fingerprint per CheckArmoredDetachedSignature (or its error)."""
    with tempfile.TemporaryDirectory(prefix="pyrkt-go-") as scratch:
        result = subprocess.run(
            [str(go_verifier()), "verify", str(_write(Path(scratch), "k.asc", keys)), str(payload),
             str(_write(Path(scratch), "s.asc", signature))],
            capture_output=True, text=True, errors="replace", timeout=120)
    if expect_ok:
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()
    assert result.returncode != 0, result.stdout
    return result.stderr.strip()


def list_packets(data: bytes | str) -> str:
    gpg = _need("gpg", "gnupg")
    with tempfile.TemporaryDirectory(prefix="pyrkt-gpg-") as scratch:
        home = Path(scratch, "home")
        home.mkdir(mode=0o700)
        result = subprocess.run([gpg, "--batch", "--list-packets", str(_write(Path(scratch), "d", data))],
                                env=dict(os.environ, GNUPGHOME=str(home)),
                                capture_output=True, text=True, errors="replace", timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def packet_problems(data: bytes | str) -> list[str]:
    """What rkt v1.30.0's vendored x/crypto/openpgp would refuse in these packets (gpg's dump).

    Each entry names the packet (by its offset) and the rule it breaks; empty means rkt reads it.
    """
    problems: list[str] = []
    where = "?"
    kind = ""
    for line in list_packets(data).splitlines():
        header = re.match(r"# off=(\d+) ", line)
        if header:
            where = f"packet at offset {header[1]}"
            continue
        if line.startswith(":"):
            kind = line
            if line.startswith(":signature packet:"):
                algo = int(re.search(r"algo (\d+)", line)[1])  # type: ignore[index]
                if algo not in RKT_SIGNATURE_ALGORITHMS:
                    problems.append(f"{where}: signature algorithm {algo}")
            continue
        text = line.strip()
        version = re.match(r"version (\d+), algo (\d+)", text)
        if version and ("key packet" in kind):
            if version[1] != "4":
                problems.append(f"{where}: key version {version[1]}")
            if int(version[2]) not in RKT_KEY_ALGORITHMS:
                problems.append(f"{where}: key algorithm {version[2]}")
            continue
        if "key packet" in kind and text.startswith("pkey[0]:") and re.search(r"\(\d+\.[\d.]+\)$", text):
            if not any(curve in text for curve in RKT_CURVES):
                problems.append(f"{where}: curve {text}")
        if "signature packet" in kind:
            sig_version = re.match(r"version (\d+), created", text)
            if sig_version and sig_version[1] != "4":
                problems.append(f"{where}: signature version {sig_version[1]}")
            digest = re.match(r"digest algo (\d+)", text)
            if digest and int(digest[1]) not in RKT_HASHES:
                problems.append(f"{where}: hash algorithm {digest[1]}")
            critical = re.match(r"critical (?:hashed )?subpkt (\d+)", text)
            if critical and int(critical[1]) not in RKT_SUBPACKETS:
                problems.append(f"{where}: critical subpacket {critical[1]}")
    return problems


def check_four_ways(keys: bytes | str, payload: Path, signature: bytes | str,
                    signer: str, signing_key_id: str | None = None) -> None:
    """gpg, sq and Go's x/crypto accept the signature by `signer` (a primary fingerprint; its
    signing key ID defaults to the primary's own), and no packet of it breaks rkt's rules."""
    assert gpg_verify(keys, payload, signature) == signer
    assert sq_verify(keys, payload, signature) == (signing_key_id or signer[-16:])
    assert go_verify(keys, payload, signature) == signer
    assert packet_problems(signature) == []
