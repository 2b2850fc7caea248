"""Pull counting must not slow downloads: the same downloads from a registry that counts pulls
(the default) and from one that does not (PYRKT_REGISTRY_PULL_COUNTING=0), in the same run.

Two live registries (gunicorn, SQLite, local storage) hold the same two images. Measured
alternately, several rounds each:
  * throughput: a large ACI (--size-mib, incompressible) downloaded with curl (sendfile path);
  * request rate: a small ACI fetched --requests times by --clients concurrent keep-alive
    clients, where a per-request cost (the counting) would show most.
Prints each figure with counting on, the baseline with counting off, their ratio and the
goal (ratio >= 0.95: counting costs under 5%), and checks the counts that were written. A
third registry, also counting off, is measured the same way as a control: its ratio to the
baseline is the noise floor of this machine in this run (on a shared machine it can be
larger than the effect measured).

    python bench/bench_pull_counting.py [--size-mib 256] [--rounds 15] [--requests 160]
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

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from live_registry import LiveRegistry  # noqa: E402

from registry.aci import ImageManifest, write_aci  # noqa: E402

GOAL = 0.95


def build_image(directory: Path, name: str, size: int) -> Path:
    rootfs = directory / "rootfs"
    rootfs.mkdir(parents=True)
    with (rootfs / "blob.bin").open("wb") as out:
        chunk = os.urandom(1 << 20)
        for i in range(max(size >> 20, 0)):
            out.write(i.to_bytes(8, "little") + chunk[8:])
        if size < 1 << 20:
            out.write(os.urandom(size))
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]})
    target = directory / "image.aci"
    write_aci(manifest, rootfs, target, compression="none")
    return target


def publish(registry: LiveRegistry, name: str, image: Path) -> str:
    with image.open("rb") as body:
        answer = registry.api("POST", f"/repositories/{name}/-/images", data=body,
                              headers={"Content-Type": "application/octet-stream"})
    answer.raise_for_status()
    return registry.url(f"/_aci/{name}/1.0/linux/amd64/image.aci")


def curl_speed(url: str) -> float:
    result = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{speed_download}", url],
                            capture_output=True, text=True, check=True)
    return float(result.stdout)


def request_rate(url: str, total: int, clients: int) -> float:
    """Requests per second of `total` GETs spread over `clients` keep-alive sessions."""
    per_client = total // clients
    errors: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                answer = session.get(url, timeout=30)
                if answer.status_code != 200:
                    errors.append(str(answer.status_code))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"downloads failed: {errors[:5]}")
    return per_client * clients / elapsed


def report(what: str, unit: str, on: list[float], off: list[float]) -> float:
    """Medians, and the median of the per-round ratios: each round measures both back to back,
    so pairing them cancels most of the drift of a machine shared with other work."""
    figure, baseline = statistics.median(on), statistics.median(off)
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    verdict = "ok" if ratio >= GOAL else "SLOWER THAN GOAL"
    print(f"{what}: {figure:,.1f} {unit} (median of {len(on)}), baseline {baseline:,.1f} "
          f"{unit}; paired ratio {ratio:.3f}, goal >= {GOAL} -> {verdict}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-pulls-") as scratch:
        work = Path(scratch)
        big = build_image(work / "big", "127.0.0.1/bench/big", args.size_mib << 20)
        small = build_image(work / "small", "127.0.0.1/bench/small", 16 << 10)
        off = {"PYRKT_REGISTRY_PULL_COUNTING": "0"}
        with LiveRegistry(work / "on", workers=2) as counting, \
                LiveRegistry(work / "off", workers=2, env=off) as plain, \
                LiveRegistry(work / "control", workers=2, env=off) as control:
            urls = {}
            labels = ("on", "off", "control")
            for label, registry in (("on", counting), ("off", plain), ("control", control)):
                urls[label] = (publish(registry, "127.0.0.1/bench/big", big),
                               publish(registry, "127.0.0.1/bench/small", small))
            for label in labels:  # warm them up (page cache, workers' first requests)
                curl_speed(urls[label][0])
                request_rate(urls[label][1], args.clients * 4, args.clients)
            speeds: dict[str, list[float]] = {label: [] for label in labels}
            rates: dict[str, list[float]] = {label: [] for label in labels}
            for round_number in range(args.rounds):
                # Rotate which goes first, so none always meets a warmer machine.
                order = labels[round_number % 3:] + labels[:round_number % 3]
                for label in order:
                    speeds[label].append(curl_speed(urls[label][0]) / 2**20)
                for label in order:
                    rates[label].append(request_rate(urls[label][1], args.requests,
                                                     args.clients))
            print(f"{args.size_mib} MiB ACI, {args.rounds} rounds; small ACI "
                  f"{small.stat().st_size // 1024} KiB, {args.requests} requests by "
                  f"{args.clients} clients per round")
            report("download throughput, counting on vs off", "MiB/s", speeds["on"], speeds["off"])
            report("  control, off vs off (noise)", "MiB/s", speeds["control"], speeds["off"])
            report("small-image request rate, counting on vs off", "req/s", rates["on"],
                   rates["off"])
            report("  control, off vs off (noise)", "req/s", rates["control"], rates["off"])
            # The counting registry did count every download (written within the flush interval).
            expected_small = args.rounds * (args.requests // args.clients) * args.clients \
                + args.clients * 4
            expected_big = args.rounds + 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = counting.api("GET", "/repositories/127.0.0.1/bench/small/-/pulls").json()
                if got["total"] >= expected_small:
                    break
                time.sleep(0.5)
            big_total = counting.api("GET", "/repositories/127.0.0.1/bench/big/-/pulls").json()
            print(f"counted: small {got['total']} of {expected_small}, big "
                  f"{big_total['total']} of {expected_big}")
            off_total = plain.api("GET", "/repositories/127.0.0.1/bench/small/-/pulls").json()
            print(f"with counting off: {off_total['total']} counted (expected 0)")


if __name__ == "__main__":
    main()
