"""Blob download through the registry (gunicorn, sendfile) vs nginx serving the same file.

Builds a 512 MiB ACI (incompressible, uncompressed tar so building is quick), pushes it into a
live registry on 127.0.0.1 (SQLite + local storage), starts nginx with a temporary config on a
free loopback port whose root holds the very same stored blob, then downloads it with curl
alternately from both, several rounds, and prints throughput and the ratio registry/nginx
(goal >= 0.9). While the registry serves, the RSS of its worker processes is sampled: it must
stay flat (the file is never read into Python).

    python bench/bench_registry_download.py [--size-mib 512] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from live_registry import LiveRegistry, free_port  # noqa: E402

from registry.aci import ImageManifest, write_aci  # noqa: E402
from registry.client.push import push_image  # noqa: E402

NGINX_CONF = """
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    types {{ application/octet-stream aci; text/html html; }}
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
    }}
}}
"""


class Nginx:
    """nginx with a temporary config, serving `docroot` on 127.0.0.1:port."""

    def __init__(self, workdir: Path, docroot: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=workdir, port=self.port, docroot=docroot))
        self.process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import requests

        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + (workdir / "nginx-error.log").read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def build_image(directory: Path, size: int) -> Path:
    rootfs = directory / "rootfs"
    rootfs.mkdir(parents=True)
    with (rootfs / "blob.bin").open("wb") as out:
        chunk = os.urandom(1 << 20)
        for i in range(size >> 20):
            # Vary every MiB so no layer of the stack can deduplicate or compress it.
            out.write(i.to_bytes(8, "little") + chunk[8:])
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "127.0.0.1/bench/big",
        "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]})
    target = directory / "big.aci"
    write_aci(manifest, rootfs, target, compression="none")
    (rootfs / "blob.bin").unlink()
    return target


def curl_speed(url: str) -> float:
    """Bytes per second of one download to /dev/null."""
    result = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{speed_download}", url],
                            capture_output=True, text=True, check=True)
    return float(result.stdout)


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn processes under `pyrkt-registry serve` (it execs into the gunicorn master)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().split()
            except OSError:
                continue
            if int(stat[3]) == master_pid:
                pids.append(int(entry))
    return pids


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # nginx workers run unprivileged and must reach the docroot
        started = time.monotonic()
        image = build_image(work / "build", args.size_mib << 20)
        print(f"built {image.stat().st_size / 2**20:.0f} MiB ACI in {time.monotonic() - started:.1f}s")
        with LiveRegistry(work / "registry", workers=2) as registry:
            started = time.monotonic()
            result = push_image(image, registry_url=registry.base_url, token=registry.token)
            print(f"pushed (stream, validate, hash, sign) in {time.monotonic() - started:.1f}s")
            digest = result.digest.split(":", 1)[1]
            blob = work / "registry" / "storage" / "blobs" / "sha256" / digest[:2] / digest
            docroot = work / "docroot"
            docroot.mkdir()
            os.link(blob, docroot / "image.aci")
            image.unlink()
            nginx = Nginx(work / "nginx", docroot)
            try:
                registry_url = result.aci_url()
                nginx_url = f"http://127.0.0.1:{nginx.port}/image.aci"
                curl_speed(registry_url), curl_speed(nginx_url)  # warm the page cache
                assert registry.process is not None
                workers = worker_pids(registry.process.pid)
                baseline = {pid: rss_kib(pid) for pid in workers}
                peak = dict(baseline)
                sampling = True

                def sample() -> None:
                    while sampling:
                        for pid in workers:
                            try:
                                peak[pid] = max(peak[pid], rss_kib(pid))
                            except OSError:
                                pass
                        time.sleep(0.02)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                ours, theirs = [], []
                for _ in range(args.rounds):
                    ours.append(curl_speed(registry_url))
                    theirs.append(curl_speed(nginx_url))
                sampling = False
                sampler.join()
            finally:
                nginx.stop()
    mib = 2**20
    reg, ngx = statistics.median(ours), statistics.median(theirs)
    print(f"registry (gunicorn): median {reg / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in ours))
    print(f"nginx              : median {ngx / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in theirs))
    print(f"ratio registry/nginx: {reg / ngx:.2f}  (goal >= 0.9)")
    growth = max(peak[pid] - baseline[pid] for pid in baseline) if baseline else 0
    print(f"worker RSS: baseline {max(baseline.values()) / 1024:.1f} MiB, "
          f"largest growth during {args.rounds} x {args.size_mib} MiB downloads: {growth / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
