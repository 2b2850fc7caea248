"""Signing and verifying a large file by path keeps the process's own memory flat.

pysequoia streams the file when signing and maps it when verifying; mapped file pages belong
to the page cache (RssFile), so the anonymous memory (RssAnon) must stay far below the file size.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.signing import SecretKey

FILE_SIZE = 256 * 1024 * 1024
ANON_LIMIT_KIB = 64 * 1024

CHILD = """
import sys
from registry.signing import load_secret_key, sign_detached, verify_detached
key = load_secret_key(open(sys.argv[1]).read())
sys.stdin.readline()  # wait until the parent has measured the baseline
signature = sign_detached(key, sys.argv[2])
print(verify_detached(signature, sys.argv[2], [key.public_key]).fingerprint, flush=True)
"""


def _rss_anon_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@pytest.mark.slow
def test_sign_and_verify_by_path_do_not_load_the_file(other_key: SecretKey, tmp_path: Path) -> None:
    big = tmp_path / "big.aci"
    with open(big, "wb") as out:  # real (non-sparse) data so every page is actually read
        block = bytes(range(256)) * 4096
        for _ in range(FILE_SIZE // len(block)):
            out.write(block)
    key_file = tmp_path / "key.asc"
    key_file.write_text(other_key.armored_secret())
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(key_file), str(big)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # imports done
    baseline = _rss_anon_kib(child.pid) or 0
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    peak = baseline
    while child.poll() is None:
        peak = max(peak, _rss_anon_kib(child.pid) or 0)
        time.sleep(0.005)
    assert child.returncode == 0
    assert child.stdout is not None and child.stdout.read().strip() == other_key.fingerprint
    assert peak - baseline < ANON_LIMIT_KIB, f"anonymous memory grew by {(peak - baseline) // 1024} MiB"
