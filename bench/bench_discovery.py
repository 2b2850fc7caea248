"""Discovery requests per second: the registry against two baselines measured in the same run.

- the registry: `pyrkt-registry serve` (gunicorn, its default worker model and worker count
  unless --workers), `GET /team/app?ac-discovery=1`;
- nginx serving the very same page as a static file (what a web server does at best);
- a minimal WSGI app answering the same bytes under the same gunicorn and the same worker
  class (what gunicorn's own HTTP handling costs, without the registry).

Each is measured with `wrk -c64` for --duration seconds, --rounds times interleaved (registry,
nginx, hello, registry, ...), and the medians are printed with the goal: at least 15,000
req/s for the registry on a 2-core machine (issue 17). `--json` prints one JSON object instead.

    python bench/bench_discovery.py [--duration 5] [--rounds 3] [--connections 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_registry_download import Nginx  # noqa: E402
from live_registry import LiveRegistry, free_port  # noqa: E402

GOAL = 15_000
HELLO_APP = '''
BODY = {body!r}
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
'''


def wrk(url: str, duration: int, connections: int, threads: int) -> float:
    result = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url],
                            capture_output=True, text=True, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if not found or errors:
        raise RuntimeError(f"wrk failed or saw errors:\n{result.stdout}")
    return float(found[1])


class Hello:
    """The minimal WSGI app under gunicorn with the registry's worker class."""

    def __init__(self, workdir: Path, body: bytes, workers: int, worker_class: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "hello_app.py").write_text(HELLO_APP.format(body=body))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PYRKT_REGISTRY_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--worker-class", worker_class,
             "--worker-connections", "2000", "--error-logfile", str(workdir / "error.log"),
             "--chdir", str(workdir), "hello_app:app"],
            env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        for _ in range(200):
            try:
                if requests.get(self.url, timeout=1).content == body:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the hello app did not start: " + (workdir / "error.log").read_text())

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default: the registry's own default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from registry.server.config import RegistryConfig

    defaults = RegistryConfig.load(environ={}).values
    workers = args.workers or defaults["workers"]
    worker_class = {"gevent": "registry.server.worker.RegistryGeventWorker",
                    "gthread": "gthread"}[defaults["worker_class"]]
    rates: dict[str, list[float]] = {"registry": [], "nginx": [], "hello": []}
    with tempfile.TemporaryDirectory(prefix="pyrkt-bench-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # nginx workers run unprivileged and must reach the docroot
        with LiveRegistry(work / "registry", workers=workers,
                          env={"PYRKT_REGISTRY_ACCESS_LOG": ""}) as registry:
            url = registry.url("/team/app?ac-discovery=1")
            page = requests.get(url, timeout=10)
            page.raise_for_status()
            docroot = work / "docroot"
            docroot.mkdir()
            (docroot / "page.html").write_bytes(page.content)
            nginx = Nginx(work / "nginx", docroot)
            hello = Hello(work / "hello", page.content, workers, worker_class)
            try:
                urls = {"registry": url, "nginx": f"http://127.0.0.1:{nginx.port}/page.html",
                        "hello": hello.url}
                for target in urls.values():
                    wrk(target, 1, args.connections, args.threads)  # warm-up
                for _ in range(args.rounds):
                    for label, target in urls.items():
                        rates[label].append(wrk(target, args.duration, args.connections,
                                                args.threads))
            finally:
                hello.stop()
                nginx.stop()
    median = {label: statistics.median(values) for label, values in rates.items()}
    result = {
        "page_bytes": len(page.content), "workers": workers, "worker_class": worker_class,
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s x {args.rounds}",
        "registry_rps": median["registry"], "nginx_rps": median["nginx"],
        "gunicorn_hello_rps": median["hello"], "goal_rps": GOAL,
        "meets_goal": median["registry"] >= GOAL,
        "ratio_to_nginx": median["registry"] / median["nginx"],
        "ratio_to_gunicorn_hello": median["registry"] / median["hello"],
        "runs": rates,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"page size: {len(page.content)} bytes; wrk {result['wrk']} (medians); "
          f"registry workers: {workers} ({defaults['worker_class']})")
    runs = {label: ", ".join(f"{v:.0f}" for v in values) for label, values in rates.items()}
    print(f"registry discovery      : {median['registry']:8.0f} req/s  (goal >= {GOAL})  "
          f"runs: {runs['registry']}")
    print(f"nginx, same page static : {median['nginx']:8.0f} req/s  runs: {runs['nginx']}")
    print(f"WSGI hello, same gunicorn: {median['hello']:7.0f} req/s  runs: {runs['hello']}")
    print(f"ratio registry/nginx: {result['ratio_to_nginx']:.3f}; "
          f"registry/gunicorn hello: {result['ratio_to_gunicorn_hello']:.3f}; "
          f"goal {'met' if result['meets_goal'] else 'NOT met'}")


if __name__ == "__main__":
    main()
