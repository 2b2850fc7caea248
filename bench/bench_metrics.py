"""What Prometheus metrics cost: downloads and discovery with metrics on against off.

Two live registries (gunicorn, 2 workers, SQLite + local storage) in one run, one with
PYRKT_REGISTRY_METRICS=0, serve the same ACI (incompressible, 512 MiB by default). curl
downloads it alternately from both, several rounds; then wrk measures discovery requests per
second on each (every request passes the metrics middleware, the hottest path). Prints the
medians and ratios on/off against the goal: within 3% (ratio >= 0.97).

    python bench/bench_metrics.py [--size-mib 512] [--rounds 9] [--wrk-seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_registry_download import build_image, curl_speed  # noqa: E402
from live_registry import LiveRegistry  # noqa: E402

from registry.client.push import push_image  # noqa: E402

GOAL = 0.97


def wrk_rate(url: str, seconds: int) -> float:
    result = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", url], capture_output=True,
                            text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk printed no rate:\n{result.stdout}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-metrics-") as scratch:
        work = Path(scratch)
        image = build_image(work / "build", args.size_mib << 20)
        # No access log (the registry's default; the test helper turns it on): with one, the
        # worker's discovery lane is off and discovery would not be measured as served.
        quiet = {"PYRKT_REGISTRY_ACCESS_LOG": ""}
        with LiveRegistry(work / "on", workers=2, env=quiet) as on, \
                LiveRegistry(work / "off", workers=2,
                             env={**quiet, "PYRKT_REGISTRY_METRICS": "0"}) as off:
            urls = {}
            for label, registry in (("on", on), ("off", off)):
                urls[label] = push_image(image, registry_url=registry.base_url,
                                         token=registry.token).aci_url()
            image.unlink()
            for url in urls.values():
                curl_speed(url)  # warm the page cache
            speeds: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(args.rounds):
                for label in ("on", "off"):
                    speeds[label].append(curl_speed(urls[label]))
            rates: dict[str, list[float]] = {"on": [], "off": []}
            if shutil.which("wrk"):
                for _ in range(3):
                    for label, registry in (("on", on), ("off", off)):
                        rates[label].append(wrk_rate(
                            registry.url("/demo/app?ac-discovery=1"), args.wrk_seconds))
                        time.sleep(0.5)
    mib = 2**20
    on_speed, off_speed = statistics.median(speeds["on"]), statistics.median(speeds["off"])
    print(f"download, metrics on : median {on_speed / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in speeds["on"]))
    print(f"download, metrics off: median {off_speed / mib:8.1f} MiB/s   runs: "
          + ", ".join(f"{s / mib:.0f}" for s in speeds["off"]))
    print(f"download ratio on/off: {on_speed / off_speed:.3f}  (goal >= {GOAL})")
    if rates["on"]:
        on_rate, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
        print(f"discovery, metrics on : median {on_rate:9.0f} req/s   runs: "
              + ", ".join(f"{r:.0f}" for r in rates["on"]))
        print(f"discovery, metrics off: median {off_rate:9.0f} req/s   runs: "
              + ", ".join(f"{r:.0f}" for r in rates["off"]))
        print(f"discovery ratio on/off: {on_rate / off_rate:.3f}  (goal >= {GOAL})")
    else:
        print("discovery: wrk is not installed (apt-get install wrk), not measured")


if __name__ == "__main__":
    main()
