"""Discovery requests per second: the registry (gunicorn) vs nginx serving a static page of the
same size, both measured with `wrk -c64` in one run; prints both rates and the ratio
(goal: at least 3,000 req/s for the registry on a 2-core machine).

    python bench/bench_discovery.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_registry_download import Nginx  # noqa: E402
from live_registry import LiveRegistry  # noqa: E402


def wrk(url: str, duration: int, connections: int, threads: int) -> float:
    result = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url],
                            capture_output=True, text=True, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if not found or errors:
        raise RuntimeError(f"wrk failed or saw errors:\n{result.stdout}")
    return float(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default: the registry's own default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # nginx workers run unprivileged and must reach the docroot
        import multiprocessing

        workers = args.workers or min(multiprocessing.cpu_count() * 2 + 1, 8)
        with LiveRegistry(work / "registry", workers=workers,
                          env={"PYRKT_REGISTRY_ACCESS_LOG": ""}) as registry:
            url = registry.url("/team/app?ac-discovery=1")
            page = requests.get(url, timeout=10)
            page.raise_for_status()
            docroot = work / "docroot"
            docroot.mkdir()
            (docroot / "page.html").write_bytes(page.content)
            nginx = Nginx(work / "nginx", docroot)
            try:
                static_url = f"http://127.0.0.1:{nginx.port}/page.html"
                wrk(url, 2, args.connections, args.threads)  # warm-up
                ours = wrk(url, args.duration, args.connections, args.threads)
                theirs = wrk(static_url, args.duration, args.connections, args.threads)
            finally:
                nginx.stop()
    print(f"page size: {len(page.content)} bytes; wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s; registry workers: {workers}")
    print(f"registry discovery: {ours:10.0f} req/s  (goal >= 3000)")
    print(f"nginx static page : {theirs:10.0f} req/s")
    print(f"ratio registry/nginx: {ours / theirs:.3f}")


if __name__ == "__main__":
    main()
