#!/usr/bin/env python3
"""Benchmark: `pyrkt fetch` of a 512 MiB gzip ACI from a local nginx vs the shell pipeline.

    python bench/bench_fetch.py [--size-mib 512] [--runs 3] [--json out.json]

pyrkt: `pyrkt fetch http://127.0.0.1:PORT/big.aci` into an empty store: download, signature
check (the signer's key trusted for the image's prefix), decompression, SHA-512 image ID, layout
and manifest validation, atomic import.
Baseline, over the same file from the same nginx, in the same run:
`curl -o big.aci URL && curl -o big.aci.asc URL.asc && gpg --verify big.aci.asc big.aci &&
gzip -dc big.aci | sha512sum`.

Reports the median wall time of each, their ratio (goal: <= 0.5, what issue 17 keeps ahead)
and peak memory (goal: under 64 MiB for pyrkt). Peak memory is measured two ways: `ru_maxrss`
of the process (which also counts file pages the signature check maps from the page cache) and
the peak of its anonymous memory (RssAnon of the process tree, sampled every 20 ms: what the
processes themselves hold).
`pyrkt` is the command as a user has it: the checkout's wheel installed into a fresh venv
(bench_run.py's `_installed`), not the development venv's editable install.
The test image (random data, so gzip cannot shrink it) and a gpg key are made once and cached
under .test-cache/bench-fetch/. Needs nginx, curl, gpg, gzip, sha512sum. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PYRKT_TEST_CACHE", REPO / ".test-cache")) / "bench-fetch"
NAME = "127.0.0.1/bench/big"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gpg_env(home: Path) -> dict[str, str]:
    return dict(os.environ, GNUPGHOME=str(home))


def prepare(size_mib: int) -> tuple[Path, Path, Path]:
    """(folder served by nginx holding big.aci + big.aci.asc, gnupg home, public key file)."""
    www = CACHE / f"www-{size_mib}"
    home = CACHE / "gnupg"
    pubkey = CACHE / "pubkey.asc"
    aci = www / "big.aci"
    if not home.exists():
        log("making a gpg key (once)...")
        home.mkdir(parents=True, mode=0o700)
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                        "--quick-gen-key", "pyrkt bench <bench@127.0.0.1>", "rsa3072", "sign",
                        "never"], env=gpg_env(home), check=True, capture_output=True)
        pubkey.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export"],
                                          env=gpg_env(home), check=True,
                                          capture_output=True).stdout)
    if not (aci.exists() and aci.with_name("big.aci.asc").exists()):
        log(f"writing a {size_mib} MiB gzip ACI (once)...")
        www.mkdir(parents=True, exist_ok=True)
        # In a child process: a forked child inherits the parent's memory high-water mark in
        # ru_maxrss, so this process must stay small for the measurements below.
        subprocess.run([sys.executable, "-c", _MAKE_IMAGE, str(aci), str(size_mib), NAME],
                       check=True, cwd=REPO)
        subprocess.run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "--output",
                        str(aci) + ".asc", str(aci)], env=gpg_env(home), check=True,
                       capture_output=True)
    for path in (CACHE, www):  # nginx workers may run as nobody
        os.chmod(path, 0o755)
    for path in www.iterdir():
        os.chmod(path, 0o644)
    return www, home, pubkey


_MAKE_IMAGE = """
import os, shutil, sys, tempfile
from pathlib import Path
from registry.aci import write_aci
aci, size_mib, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rootfs = Path(tempfile.mkdtemp(prefix="bench-rootfs-", dir=aci.parent))
try:
    left, index = size_mib << 20, 0
    while left > 0:  # random bytes: gzip cannot shrink them, the ACI stays size_mib large
        with open(rootfs / f"blob-{index}", "wb") as out:
            for _ in range(min(64 << 20, left) // (1 << 20)):
                out.write(os.urandom(1 << 20))
        left -= 64 << 20
        index += 1
    manifest = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                "labels": [{"name": "version", "value": "1"}]}
    write_aci(manifest, rootfs, aci, compression="gzip")
finally:
    shutil.rmtree(rootfs, ignore_errors=True)
"""


class Nginx:
    def __init__(self, www: Path, work: Path) -> None:
        self.port = free_port()
        self.work = work
        conf = work / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(f"""{user}worker_processes 1;
error_log {work}/error.log;
pid {work}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {www};
    }}
}}
""")
        self.process = subprocess.Popen([NGINX, "-p", str(work), "-c", str(conf), "-g",
                                         "daemon off;"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {(work / 'error.log').read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/big.aci"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _anon_kib(pid: int) -> int:
    """RssAnon of a process tree (the process and its children), in KiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending += [int(c) for c in children]
        except (OSError, ValueError):
            pass
    return total


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds, ru_maxrss (MiB) and the sampled peak anonymous memory (MiB) of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _anon_kib(process.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {stderr.decode()}")
    return {"seconds": wall, "maxrss_mib": usage.ru_maxrss / 1024, "anon_peak_mib": peak[0] / 1024}



def compile_package() -> None:
    """Byte-compile pyrkt first, as installing it does: from a checkout run with
    PYTHONDONTWRITEBYTECODE=1, every module changed since its last .pyc would otherwise be
    compiled again in each measured process (tens of ms of start-up that no install has)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "registry")],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    for tool in ("curl", "gpg", "gzip", "sha512sum"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing")
            return 2
    compile_package()
    CACHE.mkdir(parents=True, exist_ok=True)
    www, home, pubkey = prepare(args.size_mib)
    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    server = Nginx(www, work)
    try:
        config = work / "config"
        trust = subprocess.run(
            [sys.executable, "-m", "registry.cli.main", "trust", "--local-config", str(config),
             "--user-config", str(config), "--system-config", str(work / "none"), "--prefix",
             "127.0.0.1/bench", "--skip-fingerprint-review", str(pubkey)],
            capture_output=True, text=True)
        if trust.returncode != 0:
            raise RuntimeError(trust.stderr)

        sys.path.insert(0, str(REPO / "bench"))
        from bench_run import _installed

        pyrkt = str(_installed(REPO, work, "after"))

        def pyrkt_run() -> dict[str, float]:
            store = work / "store"
            shutil.rmtree(store, ignore_errors=True)
            result = measure([pyrkt, "fetch", "--dir",
                              str(store), "--local-config", str(config), "--user-config",
                              str(config), "--system-config", str(work / "none"),
                              "--insecure-options=http", "-q", server.url])
            shutil.rmtree(store, ignore_errors=True)
            return result

        def baseline_run() -> dict[str, float]:
            out = work / "baseline"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            script = (f"set -eo pipefail; curl -sf -o {out}/big.aci {server.url} && "
                      f"curl -sf -o {out}/big.aci.asc {server.url}.asc && "
                      f"gpg --batch --quiet --verify {out}/big.aci.asc {out}/big.aci && "
                      f"gzip -dc {out}/big.aci | sha512sum > {out}/sum")
            result = measure(["bash", "-c", script], env=gpg_env(home))
            shutil.rmtree(out, ignore_errors=True)
            return result

        log("warming up (page cache, imports)...")
        pyrkt_run()
        baseline_run()
        pyrkt_runs, baseline_runs = [], []
        for run in range(args.runs):
            pyrkt_runs.append(pyrkt_run())
            baseline_runs.append(baseline_run())
            log(f"run {run + 1}: pyrkt {pyrkt_runs[-1]['seconds']:.2f} s, "
                f"baseline {baseline_runs[-1]['seconds']:.2f} s")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
        # the agent the key's home started (the home is kept for the next run; its agent not)
        subprocess.run(["gpgconf", "--kill", "all"], env=gpg_env(home), capture_output=True)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    size = (www / "big.aci").stat().st_size
    results = {
        "image_bytes": size,
        "runs": args.runs,
        "pyrkt_seconds": median(pyrkt_runs, "seconds"),
        "baseline_seconds": median(baseline_runs, "seconds"),
        "pyrkt_maxrss_mib": max(r["maxrss_mib"] for r in pyrkt_runs),
        "pyrkt_anon_peak_mib": max(r["anon_peak_mib"] for r in pyrkt_runs),
        "baseline_maxrss_mib": max(r["maxrss_mib"] for r in baseline_runs),
    }
    results["ratio"] = results["pyrkt_seconds"] / results["baseline_seconds"]
    results["ratio_goal_met"] = results["ratio"] <= 0.5
    results["memory_goal_met"] = results["pyrkt_anon_peak_mib"] < 64
    print(f"image: {size / 2**20:.0f} MiB gzip ACI, median of {args.runs} runs")
    print(f"pyrkt fetch (download+verify+import): {results['pyrkt_seconds']:6.2f} s   "
          f"peak anon {results['pyrkt_anon_peak_mib']:5.1f} MiB   "
          f"maxrss {results['pyrkt_maxrss_mib']:5.1f} MiB")
    print(f"curl + gpg --verify + gzip|sha512sum:  {results['baseline_seconds']:6.2f} s   "
          f"maxrss {results['baseline_maxrss_mib']:5.1f} MiB")
    print(f"ratio pyrkt/baseline: {results['ratio']:.2f} (goal <= 0.5: "
          f"{'met' if results['ratio_goal_met'] else 'MISSED'}); memory goal < 64 MiB: "
          f"{'met' if results['memory_goal_met'] else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
