"""Blob download through the registry (gunicorn, sendfile) vs nginx serving the same file.

Builds a 512 MiB ACI (incompressible, uncompressed tar so building is quick), pushes it into a
live registry on 127.0.0.1 (SQLite + local storage), starts nginx with a temporary config on a
free loopback port whose root holds the very same stored blob, then downloads it with curl
alternately from both, several rounds, and prints throughput and the ratio registry/nginx
(goal >= 0.9). While the registry serves, the RSS of its worker processes is sampled: it must
stay flat (the file is never read into Python).

Then the TLS run, in the same run: the registry serving HTTPS (--tls-cert, a certificate from
the registry's own local CA) against nginx over TLS with the very same certificate and key,
`--tls-rounds` downloads each (goal >= 0.8), worker RSS sampled over them. sendfile(2) cannot
apply under TLS (the bytes must be encrypted in the process): gunicorn iterates the file
wrapper and the registry gives it 1 MiB blocks (registry/server/tls/middleware.py), so each
block is read into one buffer, encrypted by OpenSSL and written, then dropped — memory stays
at one block per download however large the image.

    python bench/bench_registry_download.py [--size-mib 512] [--rounds 9] [--tls-rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import os
import socket
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
{tls_server}
}}
"""
TLS_SERVER = """
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;  # the same TLS 1.3 the registry negotiates
        # Without sendfile, nginx reads the file in output_buffers: 1 MiB ones, as the registry.
        output_buffers 2 1m;
        root {docroot};
    }}
"""


class Nginx:
    """nginx with a temporary config, serving `docroot` on 127.0.0.1:port."""

    def __init__(self, workdir: Path, docroot: Path, cert: Path | None = None,
                 key: Path | None = None) -> None:
        """Plain HTTP on `port`; with `cert` and `key` also HTTPS on `tls_port`."""
        self.port = free_port()
        self.tls_port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "nginx.conf"
        tls_server = TLS_SERVER.format(tls_port=self.tls_port, cert=cert, key=key,
                                       docroot=docroot) if cert and key else ""
        conf.write_text(NGINX_CONF.format(root=workdir, port=self.port, docroot=docroot,
                                          tls_server=tls_server))
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


def curl_speed(url: str, ca: Path | None = None) -> float:
    """Bytes per second of one download to /dev/null (HTTPS verified against `ca`)."""
    trust = ["--cacert", str(ca)] if ca else []
    result = subprocess.run(["curl", "-sf", *trust, "-o", "/dev/null", "-w", "%{speed_download}",
                             url], capture_output=True, text=True, check=True)
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


def negotiated(port: int, ca: Path) -> str:
    """Protocol and cipher a default client gets from 127.0.0.1:port (both sides must match
    for the TLS comparison to be fair)."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        name, version, _ = tls.cipher() or ("?", "?", 0)
    return f"{version} {name}"


class RSSSampler:
    """Peak RSS of the registry's worker processes while downloads run."""

    def __init__(self, master_pid: int) -> None:
        self.workers = worker_pids(master_pid)
        self.baseline = {pid: rss_kib(pid) for pid in self.workers}
        self.peak = dict(self.baseline)
        self.sampling = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.sampling:
            for pid in self.workers:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_kib(pid))
                except OSError:
                    pass
            time.sleep(0.02)

    def stop(self) -> tuple[float, float]:
        """(largest baseline, largest growth) in MiB."""
        self.sampling = False
        self.thread.join()
        if not self.baseline:
            return 0.0, 0.0
        growth = max(self.peak[pid] - self.baseline[pid] for pid in self.baseline)
        return max(self.baseline.values()) / 1024, growth / 1024


def alternate(rounds: int, ours_url: str, theirs_url: str,
              ca: Path | None = None) -> tuple[list[float], list[float]]:
    ours, theirs = [], []
    for round_ in range(rounds):
        # Who goes first alternates, so a machine getting busier or quieter during the run
        # does not favour one side.
        if round_ % 2:
            theirs.append(curl_speed(theirs_url, ca))
            ours.append(curl_speed(ours_url, ca))
        else:
            ours.append(curl_speed(ours_url, ca))
            theirs.append(curl_speed(theirs_url, ca))
    return ours, theirs


def summary(ours: list[float], theirs: list[float], goal: float,
            rss: tuple[float, float]) -> dict[str, object]:
    mib = 2**20
    reg, ngx = statistics.median(ours), statistics.median(theirs)
    return {"registry_mib_s": reg / mib, "nginx_mib_s": ngx / mib, "ratio": reg / ngx,
            "goal_ratio": goal, "meets_goal": reg / ngx >= goal,
            "registry_runs_mib_s": [s / mib for s in ours],
            "nginx_runs_mib_s": [s / mib for s in theirs],
            "worker_rss_baseline_mib": rss[0], "worker_rss_growth_mib": rss[1]}


def report(label: str, ours: list[float], theirs: list[float], goal: float,
           rss: tuple[float, float], rounds: int, size_mib: int) -> None:
    mib = 2**20
    reg, ngx = statistics.median(ours), statistics.median(theirs)
    print(f"{label} registry (gunicorn): median {reg / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in ours))
    print(f"{label} nginx              : median {ngx / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in theirs))
    print(f"{label} ratio registry/nginx: {reg / ngx:.2f}  (goal >= {goal})")
    print(f"{label} worker RSS: baseline {rss[0]:.1f} MiB, largest growth during {rounds} x "
          f"{size_mib} MiB downloads: {rss[1]:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tls-rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    progress = sys.stderr if args.json else sys.stdout  # stdout holds only the JSON then
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # nginx workers run unprivileged and must reach the docroot
        started = time.monotonic()
        image = build_image(work / "build", args.size_mib << 20)
        print(f"built {image.stat().st_size / 2**20:.0f} MiB ACI in {time.monotonic() - started:.1f}s",
              file=progress)
        with LiveRegistry(work / "registry", workers=2) as registry:
            started = time.monotonic()
            result = push_image(image, registry_url=registry.base_url, token=registry.token)
            print(f"pushed (stream, validate, hash, sign) in {time.monotonic() - started:.1f}s",
                  file=progress)
            digest = result.digest.split(":", 1)[1]
            blob = work / "registry" / "storage" / "blobs" / "sha256" / digest[:2] / digest
            docroot = work / "docroot"
            docroot.mkdir()
            os.link(blob, docroot / "image.aci")
            image.unlink()
            from registry.server.tls.localca import init_local_ca

            tls = init_local_ca(work / "tls", ("127.0.0.1",))
            nginx = Nginx(work / "nginx", docroot, tls.cert_file, tls.key_file)
            try:
                registry_url = result.aci_url()
                nginx_url = f"http://127.0.0.1:{nginx.port}/image.aci"
                curl_speed(registry_url), curl_speed(nginx_url)  # warm the page cache
                assert registry.process is not None
                sampler = RSSSampler(registry.process.pid)
                ours, theirs = alternate(args.rounds, registry_url, nginx_url)
                plain_rss = sampler.stop()
                registry.stop()
                # The same data dir served over HTTPS by a new gunicorn, same certificate as nginx.
                with LiveRegistry(work / "registry", workers=2, initialise=False,
                                  tls=(tls.cert_file, tls.key_file),
                                  ca_bundle=tls.ca_file) as secure:
                    tls_registry_url = secure.base_url + registry_url.split(registry.base_url, 1)[1]
                    tls_nginx_url = f"https://127.0.0.1:{nginx.tls_port}/image.aci"
                    curl_speed(tls_registry_url, tls.ca_file)
                    curl_speed(tls_nginx_url, tls.ca_file)
                    assert secure.process is not None
                    sampler = RSSSampler(secure.process.pid)
                    tls_ours, tls_theirs = alternate(args.tls_rounds, tls_registry_url,
                                                     tls_nginx_url, tls.ca_file)
                    tls_rss = sampler.stop()
                    ciphers = (negotiated(secure.port, tls.ca_file),
                               negotiated(nginx.tls_port, tls.ca_file))
            finally:
                nginx.stop()
    if args.json:
        import json

        print(json.dumps({"size_mib": args.size_mib, "rounds": args.rounds,
                          "tls_rounds": args.tls_rounds,
                          "plain": summary(ours, theirs, 0.9, plain_rss),
                          "tls": {**summary(tls_ours, tls_theirs, 0.8, tls_rss),
                                  "negotiated_registry": ciphers[0],
                                  "negotiated_nginx": ciphers[1]}}, indent=2))
        return
    report("plain:", ours, theirs, 0.9, plain_rss, args.rounds, args.size_mib)
    report("TLS:  ", tls_ours, tls_theirs, 0.8, tls_rss, args.tls_rounds, args.size_mib)
    print(f"TLS:   negotiated: registry {ciphers[0]}, nginx {ciphers[1]}")


if __name__ == "__main__":
    main()
