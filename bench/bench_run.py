#!/usr/bin/env python3
"""Benchmark of the launcher (run as root).

1. Start-to-exit time of a tiny static app, each command a fresh process timed whole (wall
   clock, median of N), all of them interleaved round by round so a busy machine slows each
   alike, against the baseline `unshare --mount --uts --ipc --net --pid --fork chroot ROOTFS
   /app` of the same rootfs, measured in the same rounds:
   - `pyrkt run --net=host IMAGE-ID` (the network rkt's fly gives; namespaces, cgroups, the pod
     init, the seccomp filter): goal <= 35 ms and <= 12x the baseline (issue 17);
   - `pyrkt run --net=none IMAGE-ID` (a network namespace of its own, loopback only);
   - `pyrkt list`, `pyrkt image list`, `pyrkt status UUID`: goal <= 35 ms each;
   - `pyrkt run --net=default` (CNI ptp + host-local + masquerade, ADD and DEL) against
     `--net=none`: goal ratio <= 1.5;
   - the floor: `python -c pass`, and the same interpreter importing just the standard-library
     modules `pyrkt run` loads (found by running it once), which no change to pyrkt's own code
     makes cheaper.
   `pyrkt` is the command as a user has it after `pip install .`: the checkout's wheel is built
   and installed offline into a fresh virtual environment of this interpreter (the host side's
   dependencies: those installed beside this interpreter, see `_installed`), and that
   environment's console script is timed. (A development checkout's editable install costs every command ~10 ms more: setuptools'
   finder for the package's mapped folders loads at each start. Its `pyrkt run` is printed
   too, as "editable", not as the figure of record.) `--before DIR` installs and times a second
   checkout (e.g. a `git worktree` of main at an earlier commit) the same way in the same rounds.
2. In-process: prepare and the stage1 run called from this process (no start-up, no imports).
3. Pod preparation time for an image of 10,000 files: overlayfs (cold: the store renders its
   shared tree once; warm: later pods reuse it) against a private copy.
4. Where systemd is PID 1: the same start-to-exit under the systemd stage1 (a machine booted
   with the host's systemd) against the builtin stage1 in the same run. Goal: <= 1 s.
   `--systemd-only` runs just this part (in a booted container or the VM of tests/vm).

The machine this runs on may be shared: the figures are medians of interleaved rounds,
`python -c pass` of the same interpreter is printed as the floor any Python command pays, and
each command's CPU time (user + system of all its processes) is printed too: on a busy machine
wall time mostly measures the wait for a core (and the kernel's RCU grace periods that
unmounting and dropping mount namespaces wait for), CPU time what the command itself does.

    python bench/bench_run.py [--runs 21] [--files 10000] [--before DIR] [--systemd-runs 10]
                              [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

TINY_C = "int main(void) { return 0; }\n"
HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))
from module_probe import PROBE, modules_of  # noqa: E402  (the probe the startup test uses)

RUN_GOAL_S, RUN_GOAL_RATIO = 0.035, 12.0


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


WHEEL_SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "registry",
                 "templates", "migrations")


def _installed(tree: Path, work: Path, label: str) -> Path:
    """`pip install` of the checkout at `tree` into a fresh virtual environment of this
    interpreter; returns its `pyrkt` script.

    The wheel is built from a copy of the sources (an in-tree build would reuse a stale build/
    folder of the checkout) and installed offline without its dependencies; those are the ones
    installed beside this interpreter, added to the new environment's path by a .pth file (the
    benchmark runs in a network namespace of its own, where no index is reachable). A path line
    of a .pth file only extends sys.path: the .pth files of that folder (the development venv's
    editable finder) do not load, and the installed copy of `registry` comes first."""
    source, wheels, venv = work / f"src-{label}", work / f"wheels-{label}", work / f"venv-{label}"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (tree / name).is_dir():
            shutil.copytree(tree / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (tree / name).exists():
            shutil.copy2(tree / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python = venv / "bin" / "python"

    def step(*argv: str | Path) -> str:
        done = subprocess.run([str(a) for a in argv], env=env, cwd=work, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"installing {tree} ({label}): {' '.join(map(str, argv))} failed:"
                             f"\n{done.stdout}{done.stderr}")
        return done.stdout

    step(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", wheels, source)
    step(sys.executable, "-m", "venv", venv)
    step(python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         *sorted(wheels.glob("pyrkt-*.whl")))
    site_packages = Path(step(python, "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])").strip())
    ours = {sysconfig.get_paths()[kind] for kind in ("purelib", "platlib")}
    (site_packages / "bench-dependencies.pth").write_text("".join(f"{d}\n" for d in ours))
    where = step(python, "-c", "import registry; print(registry.__file__)").strip()
    if not where.startswith(str(venv)):
        raise SystemExit(f"installing {tree} ({label}): registry loads from {where}")
    return venv / "bin" / "pyrkt"


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


def _adopt_orphans() -> None:
    """Become the reaper of our descendants: `pyrkt run` returns the pod's code before the
    builtin stage1's last two processes have exited (see registry/launcher/stage1_builtin.py),
    and those would otherwise go to PID 1, their CPU time uncounted (RUSAGE_CHILDREN counts
    reaped descendants only)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans() -> None:
    """Wait for every descendant left to us (after the timing: before the next command)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _interleaved(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int,
                 between: list[tuple[list[str], dict[str, str]]]) -> dict[str, float]:
    """Median wall time of each command over `runs` rounds, each round running every command
    once (after one untimed warm-up round); `between` runs untimed after each round. Also the
    median CPU time (user + system, every process of the command): on a busy machine it is
    the steadier figure of the two."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    _adopt_orphans()
    for round_ in range(runs + 1):
        for name, (command, env) in commands.items():
            used = _cpu_of_children()
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            _reap_orphans()
            if round_:
                samples[name].append(elapsed)
                cpu[name].append(_cpu_of_children() - used)
        for command, env in between:
            subprocess.run(command, env=env, check=True, capture_output=True)
    result = {name: statistics.median(values) for name, values in samples.items()}
    result.update({f"{name}_cpu": statistics.median(values) for name, values in cpu.items()})
    return result


def bench_start(work: Path, env: dict[str, str], runs: int,
                before: Path | None) -> dict[str, float]:
    rootfs = work / "tiny-rootfs"
    if not (rootfs / "app").exists():  # bench_systemd may have made it
        rootfs.mkdir(exist_ok=True)
        (work / "tiny.c").write_text(TINY_C)
        subprocess.run(["cc", "-static", "-Os", "-o", str(rootfs / "app"), str(work / "tiny.c")],
                       check=True)
    aci = _image(work, "bench.example/tiny", rootfs, ["/app"])
    image_id = subprocess.run(_pyrkt("fetch", "--insecure-options=image", str(aci)), env=env,
                              check=True, capture_output=True, text=True).stdout.split()[-1]
    uuid = subprocess.run(_pyrkt("prepare", "-q", "--net=host", image_id), env=env, check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    trees = {"after": HERE, **({"before": before.resolve()} if before else {})}
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "unshare_chroot": (["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
                            "chroot", str(rootfs), "/app"], env)}
    user_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for label, tree in trees.items():
        script = _installed(tree, work, label)
        if label == "after":  # the floor any command of that environment pays
            commands["python_pass"] = ([str(script.with_name("python")), "-c", "pass"],
                                       user_env)
        for name, args in (("run_host", ("run", "--net=host", image_id)),
                           ("run_none", ("run", "--net=none", image_id)),
                           ("list", ("list",)), ("image_list", ("image", "list")),
                           ("status", ("status", uuid))):
            commands[f"{label}_{name}"] = ([str(script), *args], user_env)
    commands["after_run_default"] = ([commands["after_run_host"][0][0], "run", "--net=default",
                                      image_id], user_env)
    python = str(Path(commands["after_run_host"][0][0]).with_name("python"))
    commands["stdlib_floor"] = ([python, "-c", "import gc; gc.disable(); import " + ", ".join(
        _stdlib_of_run(python, image_id, user_env))], user_env)
    editable = Path(sys.executable).with_name("pyrkt")
    if editable.exists():  # this checkout's development venv (see the docstring)
        commands["editable_run_host"] = ([str(editable), "run", "--net=host", image_id],
                                         dict(env, PYTHONPATH=str(HERE)))
    # exited pods are removed between rounds: `pyrkt list` always sees the same store
    gc = (_pyrkt("gc", "--grace-period=0s"), env)
    result = _interleaved(commands, runs, [gc, gc])
    for label in trees:
        result[f"{label}_ratio"] = result[f"{label}_run_host"] / result["unshare_chroot"]
    result["network_ratio"] = result["after_run_default"] / result["after_run_none"]
    result.update(_in_process(Path(env["PYRKT_DIR"]), image_id, runs))
    result["stage1_ratio"] = result["stage1_run_s"] / result["unshare_chroot"]
    return result


def _stdlib_of_run(python: str, image_id: str, env: dict[str, str]) -> list[str]:
    """The top-level standard-library modules `pyrkt run --net=host IMAGE` loads beyond what
    `python -c pass` has: importing them alone is a floor no change to pyrkt's own code lowers
    (what of them pyrkt's modules need, and what other parts' modules on the path need)."""
    def modules(*argv: str) -> set[str]:
        return modules_of(subprocess.run([python, *argv], env=env, check=True,
                                         capture_output=True, text=True).stdout)

    # the second run: the first of a store compiles and caches the seccomp filter (libseccomp)
    modules("-c", PROBE, "run", "--net=host", image_id)
    loaded = modules("-c", PROBE, "run", "--net=host", image_id)
    floor = modules("-c", "import sys; print('MODULES', *sys.modules)")
    return sorted(m for m in loaded - floor
                  if "." not in m and m not in ("__main__", "registry"))


def _in_process(store_dir: Path, image_id: str, runs: int) -> dict[str, float]:
    """The launcher's own cost without Python's start-up and imports: prepare and run (stage1:
    namespaces, cgroups, mounts, pivot_root, exec, wait, record) called from this process."""
    from registry.launcher.options import AppOptions, PodOptions
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import run_prepared

    prepare, run = [], []
    for _ in range(runs + 1):
        options = PodOptions(apps=[AppOptions(image=image_id)], net="host")
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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(start: dict[str, float], labels: list[str], runs: int) -> None:
    base = start["unshare_chroot"]
    print(f"start-to-exit, median of {runs} interleaved rounds (unshare+chroot baseline "
          f"{_ms(base)}, python -c pass {_ms(start['python_pass'])}); pyrkt is the console "
          f"script of `pip install .` of each checkout into a fresh venv:")
    for label in labels:
        host = start[f"{label}_run_host"]
        met = host <= RUN_GOAL_S and start[f"{label}_ratio"] <= RUN_GOAL_RATIO
        print(f"  [{label}] pyrkt run --net=host {_ms(host)}, {start[f'{label}_ratio']:.1f}x "
              f"unshare+chroot (goal <= {RUN_GOAL_S * 1000:.0f} ms and <= {RUN_GOAL_RATIO:.0f}x:"
              f" {'met' if met else 'NOT met'})")
        print(f"  [{label}] CPU time: pyrkt run --net=host {_ms(start[f'{label}_run_host_cpu'])}, "
              f"pyrkt list {_ms(start[f'{label}_list_cpu'])}, pyrkt image list "
              f"{_ms(start[f'{label}_image_list_cpu'])}, pyrkt status "
              f"{_ms(start[f'{label}_status_cpu'])} (python -c pass "
              f"{_ms(start['python_pass_cpu'])}, unshare+chroot "
              f"{_ms(start['unshare_chroot_cpu'])})")
        print(f"  [{label}] pyrkt run --net=none {_ms(start[f'{label}_run_none'])}; "
              f"pyrkt list {_ms(start[f'{label}_list'])}, pyrkt image list "
              f"{_ms(start[f'{label}_image_list'])}, pyrkt status "
              f"{_ms(start[f'{label}_status'])} (goal <= {RUN_GOAL_S * 1000:.0f} ms each)")
    if "editable_run_host" in start:
        print(f"  [editable] the development venv's pyrkt (setuptools' editable finder loads at "
              f"each start): pyrkt run --net=host {_ms(start['editable_run_host'])}, CPU "
              f"{_ms(start['editable_run_host_cpu'])} (not the figure of record)")
    print(f"  floor: python -c pass {_ms(start['python_pass'])} (CPU "
          f"{_ms(start['python_pass_cpu'])}), importing the standard-library modules "
          f"`pyrkt run` loads, alone: {_ms(start['stdlib_floor'])} (CPU "
          f"{_ms(start['stdlib_floor_cpu'])})")
    print(f"network: pyrkt run --net=default {_ms(start['after_run_default'])} against "
          f"--net=none {_ms(start['after_run_none'])}, ratio {start['network_ratio']:.2f} "
          f"(goal <= 1.5: a veth, an address, a route and NAT from the CNI plugins, added and "
          f"deleted)")
    print(f"in-process (--net=host): prepare {_ms(start['prepare_in_process_s'])}, stage1 run "
          f"{_ms(start['stage1_run_s'])} (ratio to unshare+chroot {start['stage1_ratio']:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds (median of these)")
    parser.add_argument("--prepare-runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--before", type=Path, help="a second checkout timed in the same rounds")
    parser.add_argument("--systemd-runs", type=int, default=10)
    parser.add_argument("--systemd-only", action="store_true")
    parser.add_argument("--static-app", type=Path, help="a static program exiting 0 (else cc)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_run.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    if args.before is not None and not (args.before / "registry" / "cli" / "main.py").is_file():
        print(f"--before {args.before}: not a pyrkt checkout", file=sys.stderr)
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
        start = bench_start(work, env, args.runs, args.before)
        labels = ["after", *(["before"] if args.before else [])]
        report(start, labels, args.runs)
        prep = bench_prepare(work, env, args.files, args.prepare_runs)
        print(f"prepare {args.files} files: overlay cold {prep['overlay_cold_s']:.2f} s, "
              f"overlay warm {prep['overlay_warm_s']:.2f} s, copy {prep['copy_s']:.2f} s")
        if args.json:
            args.json.write_text(json.dumps({"start": start, "prepare": prep,
                                             "goal": {"run_host_s": RUN_GOAL_S,
                                                      "ratio": RUN_GOAL_RATIO}}, indent=2))
    finally:
        subprocess.run(_pyrkt("gc", "--grace-period=0s", "--expire-prepared=0s"), env=env,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
