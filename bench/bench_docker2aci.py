"""Benchmark: docker2aci to a gzip ACI against `tar -xzf` of the same layers, in one run.

Builds an OCI layout of --layers gzip layers (two by default, about --size-mib MiB of tar in
all) from real files of this host (/usr/lib, /usr/share, /usr/bin: ELF binaries, libraries,
text, already-compressed data, what images hold), the upper layer with whiteouts and an
opaque directory. Then measures, interleaved over --rounds rounds (medians printed; the
machine may be shared and noisy), each command in its own process with its own peak RSS:

  baseline        `tar -xzf` of every layer, in order, into one fresh directory
  gzip            pyrkt docker2aci --compression gzip (the deflate compression.py picks)
  gzip, zlib      the same with the fast deflate/inflate library hidden: the zlib fallback
  gzip, before    the same from another checkout (--before DIR, e.g. a `git worktree` of main)
  none            pyrkt docker2aci --compression none
  registry        the same gzip conversion as the registry's gevent workers run it for an OCI
                  push (gevent's monkey-patching, the conversion in a greenlet), with the
                  longest time the event loop was held (no other connection served), and
                  its before row

and then, the same way, `acbuild write` (write_aci, as the builder calls it) of the squashed
rootfs that `tar -xzf` extracted, against `tar -czf` of that tree (and the before checkout).

Goal: the gzip ACI in at most 1.0x the tar baseline, peak RSS flat (well under 64 MiB, the same
for an image a quarter the size) and a file within about 10% of `gzip -6` of the same tar
(measured once, outside the timings).

    python bench/bench_docker2aci.py [--size-mib 200] [--layers 2] [--rounds 5]
                                     [--before DIR] [--workdir DIR] [--json]
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import oci_images  # noqa: E402  (the tests' image builder, shared on purpose)

SOURCES = ("/usr/lib", "/usr/share", "/usr/bin")
MAX_FILE = 8 << 20  # larger host files are skipped: many ordinary files, as images have
GOAL_RATIO = 1.0
BEFORE = "pyrkt docker2aci, gzip, before"
REGISTRY = "pyrkt registry conversion (gevent)"
REGISTRY_BEFORE = "pyrkt registry conversion, before"
GOAL_SIZE = 1.10

# Linux charges a child's rusage with the memory of whoever exec'd it, so the measured
# command is started by a small fresh launcher rather than by this process; the launcher's own
# footprint is the floor every row carries (measured with `true`).
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss,
      usage.ru_utime + usage.ru_stime)
"""

# `sys.modules[name] = None` makes `import name` fail as if the package were not installed:
# the zlib row runs the same code down its fallback path.
CONVERT = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None
from registry.docker.convert import ConvertOptions, convert
[image] = convert({layout!r}, {out!r}, ConvertOptions(compression={compression!r}))
print(image.image_id)
"""


# The registry's conversion of an OCI push: gevent-patched, in a greenlet, while a ticker greenlet
# measures how long the event loop is held at a time (every other connection waits that long).
CONVERT_GEVENT = """
from gevent import monkey
monkey.patch_all()
import threading, time
import gevent
from registry.docker.convert import ConvertOptions, convert
gaps = [0.0]
def ticker():
    last = time.perf_counter()
    while True:
        gevent.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
watch = gevent.spawn(ticker)
done = []
worker = threading.Thread(target=lambda: done.extend(
    convert({layout!r}, {out!r}, ConvertOptions(compression="gzip"))))
worker.start()
worker.join()
watch.kill()
with open({out!r} + "/stall", "w") as note:
    note.write(str(max(gaps)))
print(done[0].image_id)
"""

# acbuild write's writer: write_aci of a rootfs tree, gzip, reproducible (its defaults).
WRITE = """
from registry.aci import write_aci
print(write_aci({manifest!r}, {rootfs!r}, {out!r}, compression="gzip"))
"""
WRITE_MANIFEST = ('{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bench",'
                  '"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]}')


def host_files(total: int) -> list[Path]:
    """Regular files of this host, in a stable order, adding up to about `total` bytes."""
    found: list[Path] = []
    size = 0
    for root in SOURCES:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(directory, name)
                try:
                    if path.is_symlink() or not path.is_file():
                        continue
                    length = path.stat().st_size
                    if not 0 < length <= MAX_FILE or not os.access(path, os.R_OK):
                        continue
                except OSError:
                    continue
                found.append(path)
                size += length
                if size >= total:
                    return found
    return found


def layer_entries(files: list[Path]) -> list[oci_images.Entry]:
    """The files under their host paths, each parent directory once, before its children."""
    entries: list[oci_images.Entry] = []
    made: set[str] = set()
    for path in files:
        relative = str(path).lstrip("/")
        parts = relative.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in made:
                made.add(parent)
                entries.append(oci_images.directory(parent))
        entries.append(oci_images.Entry(relative, source=path))
    return entries


def build_image(layout: Path, size_mib: int, layers: int) -> oci_images.OCIImage:
    files = host_files(size_mib << 20)
    if not files:
        raise SystemExit(f"no readable files under {', '.join(SOURCES)}")
    # The bottom layer is the base (most of the bytes), each upper one a smaller change set.
    shares = [0.7] + [0.3 / (layers - 1)] * (layers - 1) if layers > 1 else [1.0]
    contents: list[list[oci_images.Entry]] = []
    start = 0
    for number, share in enumerate(shares):
        end = len(files) if number == layers - 1 else start + max(1, int(len(files) * share))
        entries = layer_entries(files[start:end])
        if number > 0:
            below = [e for e in contents[-1] if e.kind == "file"]
            dirs = [e for e in contents[-1] if e.kind == "dir"]
            entries += [oci_images.whiteout(e.path) for e in below[::50]]
            if dirs:
                entries += [oci_images.directory(dirs[-1].path), oci_images.opaque(dirs[-1].path)]
        contents.append(entries)
        start = end
    return oci_images.write_oci_layout(layout, contents, tag="bench")


def measure(command: list[str], env: dict[str, str] | None = None
            ) -> tuple[float, int, float, str]:
    """Wall time (s), peak RSS (KiB), CPU time (s) and the standard output of one command."""
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *command], check=False,
                            capture_output=True, text=True, env=env)
    lines = result.stdout.split("\n")
    status = lines[-2].split() if len(lines) >= 2 else []
    if result.returncode != 0 or len(status) != 4 or status[0] != "0":
        raise SystemExit(f"{' '.join(command)[:80]}... failed:\n{result.stdout}{result.stderr}")
    return float(status[1]), int(status[2]), float(status[3]), "\n".join(lines[:-2])


def python_env(checkout: Path) -> dict[str, str]:
    """This interpreter with `registry` imported from `checkout` (the commands run with -P, so
    the current directory, which may be another checkout, is not searched first)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{checkout}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") \
        else str(checkout)
    return env


def gzip6_size(aci: Path) -> tuple[int, int]:
    """(uncompressed tar bytes, `gzip -6` bytes of that tar) of a gzip ACI."""
    script = f"gzip -dc {aci} | tee >(wc -c >&2) | gzip -6 -c | wc -c"
    result = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return int(result.stderr.split()[0]), int(result.stdout.split()[0])


def compile_package(checkout: Path) -> None:
    """Byte-compile a checkout's package first, as installing it does: run with
    PYTHONDONTWRITEBYTECODE=1, every measured process would otherwise compile each module
    changed since its last .pyc again (tens of ms that no install has)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "registry")],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200, help="tar bytes of all layers")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument("--before", type=Path, default=None,
                        help="another checkout of pyrkt to time as the 'before' row")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    for checkout in (REPO, args.before) if args.before else (REPO,):
        compile_package(checkout)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-docker2aci-") as temp:
        root = Path(temp)
        started = time.perf_counter()
        image = build_image(root / "layout", args.size_mib, args.layers)
        layer_bytes = sum(b.size for b in image.layers)
        say(f"image: {args.layers} gzip layers, {layer_bytes / 2**20:.0f} MiB of blobs from "
            f"host files (built in {time.perf_counter() - started:.1f}s)")
        extract = root / "extract"
        tar_script = "set -e\n" + "".join(
            f"tar -xzf {image.blob_path(b.digest)} -C {extract}\n" for b in image.layers)
        here = python_env(REPO)
        variants: list[tuple[str, list[str], dict[str, str] | None, str]] = [
            ("tar -xzf, all layers (baseline)", ["sh", "-c", tar_script], None, "")]
        for label, env, compression, hidden in (
                ("pyrkt docker2aci, gzip", here, "gzip", ()),
                ("pyrkt docker2aci, gzip, zlib fallback", here, "gzip", ("isal",)),
                (BEFORE, python_env(args.before) if args.before
                 else None, "gzip", ()),
                ("pyrkt docker2aci, none", here, "none", ())):
            if env is None:
                continue
            out = root / f"out-{len(variants)}"
            code = CONVERT.format(hidden=list(hidden), layout=str(image.layout), out=str(out),
                                  compression=compression)
            variants.append((label, [sys.executable, "-P", "-c", code], env, str(out)))
        for label, env in ((REGISTRY, here), (REGISTRY_BEFORE, python_env(args.before)
                                              if args.before else None)):
            if env is not None:
                out = root / f"out-{len(variants)}"
                code = CONVERT_GEVENT.format(layout=str(image.layout), out=str(out))
                variants.append((label, [sys.executable, "-P", "-c", code], env, str(out)))
        stalls: dict[str, float] = {}
        floor = measure(["true"])[1]
        times: dict[str, list[float]] = {v[0]: [] for v in variants}
        rss: dict[str, list[int]] = {v[0]: [] for v in variants}
        cpu: dict[str, list[float]] = {v[0]: [] for v in variants}
        ids: dict[str, str] = {}
        for round_number in range(args.rounds):
            # Rotated each round, so no row always runs right after the same neighbour.
            shift = round_number % len(variants)
            for label, command, env, out in variants[shift:] + variants[:shift]:
                if out:
                    shutil.rmtree(out, ignore_errors=True)
                    Path(out).mkdir()
                else:
                    shutil.rmtree(extract, ignore_errors=True)
                    extract.mkdir()
                seconds, peak, used, output = measure(command, env)
                times[label].append(seconds)
                cpu[label].append(used)
                rss[label].append(peak)
                if output:
                    ids[label] = output.strip()
                if label in (REGISTRY, REGISTRY_BEFORE):
                    stalls[label] = max(stalls.get(label, 0.0),
                                        float((Path(out) / "stall").read_text()))
            say(f"round {round_number + 1}/{args.rounds} done")
        # acbuild write of the rootfs tar extracted (its last round left it in place).
        writes: list[tuple[str, list[str], dict[str, str] | None]] = [
            ("tar -czf of the rootfs (baseline)",
             ["tar", "-czf", str(root / "rootfs.tgz"), "-C", str(extract), "."], None)]
        for label, env in (("pyrkt acbuild write (write_aci), gzip", here),
                           ("pyrkt acbuild write, before",
                            python_env(args.before) if args.before else None)):
            if env is not None:
                code = WRITE.format(manifest=WRITE_MANIFEST, rootfs=str(extract),
                                    out=str(root / f"write-{len(writes)}.aci"))
                writes.append((label, [sys.executable, "-P", "-c", code], env))
        for round_number in range(args.rounds):
            shift = round_number % len(writes)
            for label, command, env in writes[shift:] + writes[:shift]:
                seconds, peak, used, _ = measure(command, env)
                times.setdefault(label, []).append(seconds)
                cpu.setdefault(label, []).append(used)
                rss.setdefault(label, []).append(peak)
            say(f"acbuild write round {round_number + 1}/{args.rounds} done")
        baseline_label = variants[0][0]
        gzip_label = "pyrkt docker2aci, gzip"
        outputs = {v[0]: Path(v[3]) for v in variants}
        aci = next(outputs[gzip_label].glob("*.aci"))
        zlib_aci = next(outputs["pyrkt docker2aci, gzip, zlib fallback"].glob("*.aci"))
        tar_size, gzip6 = gzip6_size(aci)
        # Flat memory: the same conversion of an image a quarter the size peaks the same.
        small = build_image(root / "small", max(args.size_mib // 4, 1), args.layers)
        (root / "out-small").mkdir()
        small_code = CONVERT.format(hidden=[], layout=str(small.layout),
                                    out=str(root / "out-small"), compression="gzip")
        small_rss = measure([sys.executable, "-P", "-c", small_code], here)[1]
        rows: list[dict[str, Any]] = []
        for section, base_label in ((variants, baseline_label), (writes, writes[0][0])):
            baseline = statistics.median(times[base_label])
            for label, *_ in section:
                median = statistics.median(times[label])
                rows.append({"label": label, "median_s": round(median, 3),
                             "runs_s": [round(t, 3) for t in times[label]],
                             "ratio": round(median / baseline, 3),
                             "cpu_s": round(statistics.median(cpu[label]), 3),
                             "peak_rss_mib": round(max(rss[label]) / 1024, 1)})
        result = {
            "layers": args.layers, "layer_blob_mib": round(layer_bytes / 2**20, 1),
            "tar_mib": round(tar_size / 2**20, 1), "rounds": args.rounds,
            "launcher_floor_mib": round(floor / 1024, 1), "rows": rows,
            "goal_ratio": GOAL_RATIO,
            "gzip_ratio": next(r["ratio"] for r in rows if r["label"] == gzip_label),
            "aci_bytes": aci.stat().st_size, "zlib_fallback_aci_bytes": zlib_aci.stat().st_size,
            "gzip6_bytes": gzip6, "size_vs_gzip6": round(aci.stat().st_size / gzip6, 3),
            "goal_size_vs_gzip6": GOAL_SIZE,
            # The rows of this checkout write the same tar whatever the deflate library; another
            # checkout (--before) may order the rootfs differently.
            "same_image_id": len({v for k, v in ids.items()
                                  if k not in (BEFORE, REGISTRY_BEFORE)}) == 1,
            "before_same_image_id": ids.get(BEFORE) == ids.get(gzip_label) if BEFORE in ids
            else None,
            "gzip_peak_rss_mib_at_quarter_size": round(small_rss / 1024, 1),
            "event_loop_held_max_ms": {k: round(v * 1000, 1) for k, v in stalls.items()},
        }
        if args.json:
            print(json.dumps(result, indent=1))
            return
        print(f"\n{'':40} {'median':>8} {'ratio':>6} {'CPU':>7} {'peak RSS':>10}   "
              f"({args.rounds} interleaved rounds; launcher floor {floor / 1024:.1f} MiB)")
        for row in rows:
            if row["label"] == writes[0][0]:
                print()  # the acbuild write section, against its own baseline
            print(f"{row['label']:40} {row['median_s']:7.2f}s {row['ratio']:5.2f}x "
                  f"{row['cpu_s']:6.2f}s {row['peak_rss_mib']:8.1f} MiB")
        print(f"\ngzip ACI: {result['gzip_ratio']:.2f}x the tar -xzf baseline "
              f"(goal <= {GOAL_RATIO:.1f}x)")
        print(f"size: {result['aci_bytes'] / 2**20:.1f} MiB against gzip -6 "
              f"{gzip6 / 2**20:.1f} MiB of the same {tar_size / 2**20:.0f} MiB tar: "
              f"{result['size_vs_gzip6']:.3f}x (goal <= {GOAL_SIZE:.2f}x); zlib fallback "
              f"{zlib_aci.stat().st_size / gzip6:.3f}x")
        gzip_rss = next(r["peak_rss_mib"] for r in rows if r["label"] == gzip_label)
        print(f"peak RSS of the gzip row: {gzip_rss:.1f} MiB at {tar_size / 2**20:.0f} MiB, "
              f"{small_rss / 1024:.1f} MiB at a quarter of that (flat; goal < 64 MiB)")
        for label, held in stalls.items():
            print(f"{label}: the event loop held at most {held * 1000:.0f} ms at a time")
        print(f"image IDs of this checkout's rows identical: {result['same_image_id']}")
        if result["before_same_image_id"] is not None:
            print(f"image ID of the before row the same: {result['before_same_image_id']}"
                  " (not when the two order the rootfs differently)")


if __name__ == "__main__":
    main()
