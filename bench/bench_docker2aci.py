"""Benchmark: docker2aci on a 512 MiB image against `tar` extracting the same layers.

Builds an OCI layout (4 gzip layers by default, with whiteouts and an opaque directory in the
upper layers), then measures in separate processes, each with its own peak RSS:
  baseline   `tar -xzf` of every layer, in order, into one directory (what a naive squash does)
  convert    pyrkt's two-pass squash to an uncompressed ACI, then to a gzip ACI

    python bench/bench_docker2aci.py [--size-mib 512] [--layers 4] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import oci_images  # noqa: E402  (the tests' image builder, shared on purpose)

FILE_MIB = 4


def build_image(layout: Path, size_mib: int, layers: int) -> oci_images.OCIImage:
    per_layer = max(1, size_mib // layers // FILE_MIB)
    contents = []
    for number in range(layers):
        entries = [oci_images.directory("data"), oci_images.directory(f"data/l{number}"),
                   oci_images.directory("shared")]
        if number > 0:
            entries += [oci_images.whiteout(f"data/l{number - 1}/f0"),
                        oci_images.opaque("shared")]
        entries += [oci_images.Entry(f"data/l{number}/f{i}", size=FILE_MIB << 20)
                    for i in range(per_layer)]
        entries += [oci_images.file(f"shared/small{i}", f"{number}-{i}\n") for i in range(200)]
        contents.append(entries)
    return oci_images.write_oci_layout(layout, contents, tag="bench")


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
print(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss)
"""


def measure(command: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (KiB) of one command."""
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *command], check=True,
                            capture_output=True, text=True)
    code, seconds, rss = result.stdout.split()
    if code != "0":
        raise SystemExit(f"{command[:3]}... failed with {code}")
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-docker2aci-") as temp:
        root = Path(temp)
        started = time.perf_counter()
        image = build_image(root / "layout", args.size_mib, args.layers)
        layer_bytes = sum(b.size for b in image.layers)
        print(f"image: {args.layers} gzip layers, {layer_bytes / 2**20:.0f} MiB of blobs "
              f"(built in {time.perf_counter() - started:.1f}s)")
        extract = root / "extract"
        extract.mkdir()
        script = "set -e\n" + "".join(
            f"tar -xzf {image.blob_path(b.digest)} -C {extract}\n" for b in image.layers)
        rows = [("tar -xzf, all layers (baseline)", *measure(["sh", "-c", script]))]
        floor = measure(["true"])[1]
        for compression in ("none", "gzip"):
            out = root / f"out-{compression}"
            out.mkdir()
            code = ("from registry.docker.convert import ConvertOptions, convert; "
                    f"convert({str(image.layout)!r}, {str(out)!r}, "
                    f"ConvertOptions(compression={compression!r}))")
            rows.append((f"pyrkt docker2aci --compression {compression}",
                         *measure([sys.executable, "-c", code])))
        print(f"{'':40} {'time':>8} {'peak RSS':>10}   (launcher floor {floor / 1024:.1f} MiB)")
        for label, seconds, rss_kib in rows:
            print(f"{label:40} {seconds:7.2f}s {rss_kib / 1024:8.1f} MiB")
        baseline = rows[0][1]
        for label, seconds, _ in rows[1:]:
            print(f"{label}: {seconds / baseline:.2f}x the tar baseline")


if __name__ == "__main__":
    main()
