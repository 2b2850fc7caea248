"""Slow and idle clients: how many connections the registry holds while /_health, a discovery
page and a download stay fast.

Starts a live registry (`pyrkt-registry serve`, SQLite + local storage, its default worker
model unless --worker-class), pushes one small image, then measures the latency of /_health,
the discovery page and the ACI download with no load (the baseline), then again while
--connections clients (a third each) trickle their headers, trickle an upload body, or sit
idle, reconnecting whenever the server hangs up. Prints connections held, the latencies
(median, 99th percentile, worst) under load next to the baseline, and the goal: every answer
within 1 s.

    python bench/bench_slow_clients.py [--connections 1000] [--duration 20] [--worker-class gthread]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from live_registry import LiveRegistry  # noqa: E402
from slow_clients import SlowClients  # noqa: E402

from registry.aci import ImageManifest, write_aci  # noqa: E402
from registry.client.push import push_image  # noqa: E402

GOAL_SECONDS = 1.0
NAME = "127.0.0.1/team/app"


def make_image(work: Path) -> Path:
    rootfs = work / "rootfs"
    rootfs.mkdir()
    (rootfs / "payload").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": NAME,
        "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]})
    write_aci(manifest, rootfs, work / "app.aci", compression="none")
    return work / "app.aci"


def measure(urls: dict[str, str], duration: float, timeout: float) -> dict[str, list[float]]:
    """Latency of each URL, round-robin, a new connection per request (a new client)."""
    results: dict[str, list[float]] = {name: [] for name in urls}
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for name, url in urls.items():
            start = time.monotonic()
            try:
                response = requests.get(url, timeout=timeout)
                response.raise_for_status()
                _ = response.content
                results[name].append(time.monotonic() - start)
            except requests.RequestException:
                results[name].append(float("inf"))
        time.sleep(0.05)
    return results


def summary(samples: list[float]) -> str:
    finite = sorted(s for s in samples if s != float("inf"))
    failed = len(samples) - len(finite)
    if not finite:
        return f"all {failed} requests failed or timed out"
    p99 = finite[min(len(finite) - 1, int(len(finite) * 0.99))]
    worst = "timeout" if failed else f"{finite[-1] * 1000:7.1f}"
    return (f"median {statistics.median(finite) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"worst {worst} ms  ({len(samples)} requests, {failed} failed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--worker-class", default=None, help="gevent (default) or gthread")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    env = {"PYRKT_REGISTRY_ACCESS_LOG": ""}
    if args.worker_class:
        env["PYRKT_REGISTRY_WORKER_CLASS"] = args.worker_class
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-slow-") as scratch:
        work = Path(scratch)
        with LiveRegistry(work / "registry", workers=args.workers, env=env) as registry:
            push_image(make_image(work), registry_url=registry.base_url, token=registry.token)
            urls = {
                "health": registry.url("/_health"),
                "discovery": registry.url(f"/{NAME.split('/', 1)[1]}?ac-discovery=1"),
                "download": registry.url(f"/_aci/{NAME}/1.0/linux/amd64/image.aci"),
            }
            baseline = measure(urls, min(5.0, args.duration), timeout=10)
            third = args.connections // 3
            with SlowClients("127.0.0.1", registry.port, trickle_headers=third,
                             trickle_bodies=third, idle=args.connections - 2 * third,
                             body_path=f"/_api/v1/repositories/{NAME}/-/images") as load:
                held_at_start = load.wait_connected(args.connections, timeout=60)
                loaded = measure(urls, args.duration, timeout=10)
                held_at_end = load.held
                reconnects = load.closed_by_server
    print(f"worker class: {args.worker_class or 'gevent (default)'}, workers: {args.workers}")
    print(f"slow connections: {args.connections} requested, {held_at_start} held when the "
          f"measurement began, {held_at_end} at its end; the server hung up {reconnects} "
          "times (header deadline), each reconnected")
    worst = 0.0
    for name in urls:
        print(f"{name:9} baseline : {summary(baseline[name])}")
        print(f"{name:9} under load: {summary(loaded[name])}")
        worst = max(worst, max(loaded[name]))
    verdict = "met" if worst <= GOAL_SECONDS else "NOT met"
    shown = "timeout" if worst == float("inf") else f"{worst * 1000:.0f} ms"
    print(f"goal: every answer within {GOAL_SECONDS:.0f} s under load -> worst {shown}: {verdict}")


if __name__ == "__main__":
    main()
