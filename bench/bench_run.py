#!/usr/bin/env python3
"""Benchmark of the launcher (run as root).

1. Start-to-exit time of a tiny static app: `pyrkt run --net=none IMAGE-ID` (builtin stage1:
   namespaces, cgroups, pivot_root, log capture) against the baseline `unshare --mount --uts
   --ipc --net --pid --fork chroot ROOTFS /app` of the same rootfs, measured in the same run the
   same way (median of N wall-clock runs of the whole command). Goal: ratio <= 3. And the
   network's cost: `pyrkt run --net=default` (CNI ptp + host-local + masquerade, ADD and DEL)
   against `--net=none`, same run. Goal: ratio <= 1.5. Runs in a network namespace of its own.
2. Pod preparation time for an image of 10,000 files: overlayfs (cold: the store renders its
   shared tree once; warm: later pods reuse it) against a private copy.
3. Where systemd is PID 1: the same start-to-exit under the systemd stage1 (a machine booted
   with the host's systemd) against the builtin stage1 in the same run. Goal: <= 1 s.
   `--systemd-only` runs just this part (in a booted container or the VM of tests/vm).

    python bench/bench_run.py [--runs 20] [--files 10000] [--systemd-runs 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY_C = "int main(void) { return 0; }\n"


def _median_seconds(command: list[str], runs: int, env: dict[str, str]) -> float:
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _image(work: Path, name: str, rootfs: Path, exec_: list[str]) -> Path:
    from registry.aci import ImageManifest, write_aci

    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {"exec": exec_, "user": "0", "group": "0"}})
    out = work / f"{name.rsplit('/', 1)[-1]}.aci"
    write_aci(manifest, rootfs, out, compression="none")
    return out


def _pyrkt(*args: str) -> list[str]:
    return [sys.executable, "-m", "registry.cli.main", *args]


def bench_start(work: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    rootfs = work / "tiny-rootfs"
    rootfs.mkdir()
    (work / "tiny.c").write_text(TINY_C)
    subprocess.run(["cc", "-static", "-Os", "-o", str(rootfs / "app"), str(work / "tiny.c")],
                   check=True)
    aci = _image(work, "bench.example/tiny", rootfs, ["/app"])
    image_id = subprocess.run(_pyrkt("fetch", "--insecure-options=image", str(aci)), env=env,
                              check=True, capture_output=True, text=True).stdout.split()[-1]
    baseline = ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
                "chroot", str(rootfs), "/app"]
    result = {"unshare_chroot_s": _median_seconds(baseline, runs, env),
              "pyrkt_run_s": _median_seconds(_pyrkt("run", "--net=none", image_id), runs, env),
              "pyrkt_run_default_net_s": _median_seconds(_pyrkt("run", "--net=default", image_id),
                                                         runs, env),
              "python_startup_s": _median_seconds([sys.executable, "-c", "pass"], runs, env)}
    result["ratio"] = result["pyrkt_run_s"] / result["unshare_chroot_s"]
    result["network_ratio"] = result["pyrkt_run_default_net_s"] / result["pyrkt_run_s"]
    result.update(_in_process(Path(env["PYRKT_DIR"]), image_id, runs))
    result["stage1_ratio"] = result["stage1_run_s"] / result["unshare_chroot_s"]
    return result


def _in_process(store_dir: Path, image_id: str, runs: int) -> dict[str, float]:
    """The launcher's own cost without Python's start-up and imports: prepare and run (stage1:
    namespaces, cgroups, mounts, pivot_root, exec, wait, record) called from this process."""
    from registry.launcher.options import AppOptions, PodOptions
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import run_prepared

    prepare, run = [], []
    for _ in range(runs + 1):
        options = PodOptions(apps=[AppOptions(image=image_id)], net="none")
        start = time.perf_counter()
        pod = prepare_pod(store_dir, options)
        middle = time.perf_counter()
        _, code = run_prepared(store_dir, pod.uuid, echo=False)
        end = time.perf_counter()
        assert code == 0
        prepare.append(middle - start)
        run.append(end - middle)
    return {"prepare_in_process_s": statistics.median(prepare[1:]),
            "stage1_run_s": statistics.median(run[1:])}


def bench_systemd(work: Path, env: dict[str, str], runs: int,
                  static_app: Path | None = None) -> dict[str, float]:
    """Start-to-exit of a one-app pod under the systemd stage1 (its machine boots and powers
    off) against the builtin stage1, same image, same run."""
    rootfs = work / "tiny-rootfs"
    if not rootfs.exists():
        rootfs.mkdir()
        if static_app is not None:  # a host without a compiler (a minimal booted container)
            shutil.copy2(static_app, rootfs / "app")
        else:
            (work / "tiny.c").write_text(TINY_C)
            subprocess.run(["cc", "-static", "-Os", "-o", str(rootfs / "app"),
                            str(work / "tiny.c")], check=True)
    aci = _image(work, "bench.example/tiny", rootfs, ["/app"])
    image_id = subprocess.run(_pyrkt("fetch", "--insecure-options=image", str(aci)), env=env,
                              check=True, capture_output=True, text=True).stdout.split()[-1]
    result = {flavour + "_s": _median_seconds(_pyrkt("run", f"--stage1={flavour}", "--net=none",
                                                     image_id), runs, env)
              for flavour in ("systemd", "builtin")}
    return result


def bench_prepare(work: Path, env: dict[str, str], files: int, runs: int) -> dict[str, float]:
    rootfs = work / "many-rootfs"
    for index in range(files):
        directory = rootfs / f"d{index // 500:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}").write_text(f"file {index}\n")
    aci = _image(work, "bench.example/many", rootfs, ["/bin/true"])
    image_id = subprocess.run(_pyrkt("fetch", "--insecure-options=image", str(aci)), env=env,
                              check=True, capture_output=True, text=True).stdout.split()[-1]

    def once(*flags: str) -> float:
        start = time.perf_counter()
        subprocess.run(_pyrkt("prepare", "-q", *flags, image_id), env=env, check=True,
                       capture_output=True)
        return time.perf_counter() - start

    overlay_cold = once()
    overlay_warm = statistics.median(once() for _ in range(runs))
    copy = statistics.median(once("--no-overlay") for _ in range(runs))
    return {"files": files, "overlay_cold_s": overlay_cold, "overlay_warm_s": overlay_warm,
            "copy_s": copy}


def _own_network_namespace() -> None:
    """The pods' veths, routes and NAT rules go into a namespace of the benchmark's own (every
    command below inherits it), never into the host's network."""
    from registry.launcher import linux

    linux.unshare(linux.CLONE_NEWNET)
    linux.loopback_up()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--prepare-runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--systemd-runs", type=int, default=10)
    parser.add_argument("--systemd-only", action="store_true")
    parser.add_argument("--static-app", type=Path, help="a static program exiting 0 (else cc)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_run.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    _own_network_namespace()
    work = Path(tempfile.mkdtemp(prefix="pyrkt-bench-"))
    env = dict(os.environ, PYRKT_DIR=str(work / "store"),
               # byte-code caches in a private folder: each run should not recompile every module
               # (a PYTHONDONTWRITEBYTECODE environment would), and nothing is written in the tree
               PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        if os.path.isdir("/run/systemd/system"):
            unit = bench_systemd(work, env, args.systemd_runs, args.static_app)
            print(f"systemd stage1 start-to-exit (median of {args.systemd_runs}): "
                  f"{unit['systemd_s'] * 1000:.0f} ms, builtin stage1 {unit['builtin_s'] * 1000:.0f}"
                  f" ms (goal <= 1000 ms: a minimal systemd boots and powers off per pod)")
        else:
            print("systemd stage1: not measured (systemd is not PID 1 here)")
        if args.systemd_only:
            return 0
        start = bench_start(work, env, args.runs)
        print(f"start-to-exit (median of {args.runs}): unshare+chroot "
              f"{start['unshare_chroot_s'] * 1000:.1f} ms, pyrkt run "
              f"{start['pyrkt_run_s'] * 1000:.1f} ms, ratio {start['ratio']:.1f} "
              f"(goal <= 3; python -c pass alone {start['python_startup_s'] * 1000:.1f} ms)")
        print(f"network: pyrkt run --net=default {start['pyrkt_run_default_net_s'] * 1000:.1f} ms "
              f"against --net=none {start['pyrkt_run_s'] * 1000:.1f} ms, ratio "
              f"{start['network_ratio']:.2f} (goal <= 1.5: a veth, an address, a route and NAT "
              f"from the CNI plugins, added and deleted)")
        print(f"in-process: prepare {start['prepare_in_process_s'] * 1000:.1f} ms, stage1 run "
              f"{start['stage1_run_s'] * 1000:.1f} ms (ratio to unshare+chroot "
              f"{start['stage1_ratio']:.1f})")
        prep = bench_prepare(work, env, args.files, args.prepare_runs)
        print(f"prepare {args.files} files: overlay cold {prep['overlay_cold_s']:.2f} s, "
              f"overlay warm {prep['overlay_warm_s']:.2f} s, copy {prep['copy_s']:.2f} s")
        if args.json:
            args.json.write_text(json.dumps({"start": start, "prepare": prep}, indent=2))
    finally:
        subprocess.run(_pyrkt("gc", "--grace-period=0s", "--expire-prepared=0s"), env=env,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
