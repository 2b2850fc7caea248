"""Image-ID computation of a gzip ACI against `gzip -dc FILE | sha512sum`, in the same run.

Builds (in a temporary directory) gzip ACIs of mixed content (half incompressible random
bytes, half compressible text) with the format core's own writer, then times, best of
--repeat runs each, interleaved:

  baseline   gzip -dc FILE | sha512sum                       (two processes, two cores)
  image_id   python: registry.aci.image_id_of(FILE)         (decompress + SHA-512 only)
  read_aci   python: registry.aci.read_aci(FILE)            (+ tar layout + manifest)

Times are wall-clock of whole processes (Python start-up included); each process imports
only the function it times (`from registry.aci import image_id_of`, or read_aci), so its
start-up is what a program calling that one function pays. The ratio goal is
<= 0.4 (issue 17: keep what is ahead); peak RSS of the Python process (os.wait4) should stay
flat, under 64 MiB, at every image size, so the run measures a second, smaller image too.

Python is pyrkt as a user has it: the checkout's wheel installed into a fresh venv (as
bench_run.py does; the development venv's editable finder costs each start ~10 ms, a tenth of
what the whole ID of a small image may take). `[editable]` repeats image_id_of from the
development venv, for comparison with older figures.

    python bench/bench_image_id.py [--size-mib 512] [--small-mib 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_fetch import compile_package  # noqa: E402
from bench_run import _installed  # noqa: E402

FILE_MIB = 16
TEXT = b"".join(b"line %07d: the quick brown fox jumps over the lazy dog %d\n" % (i, i * 7919)
                for i in range(20000))

# Each row's process imports the one function it times (what a caller of it pays), nothing else.
CHILD = """
import sys, time
{path_line}
from registry.aci import {call}
started = time.perf_counter()
result = {call}({path!r})
print(getattr(result, "image_id", result), time.perf_counter() - started)
"""


def build_image(directory: Path, size_mib: int) -> Path:
    """The test image, written by a child process: a child spawned by this one starts with
    this one's memory high-water mark in ru_maxrss, so this process must stay small."""
    subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1:3]; "
                    "from bench_image_id import _build; _build(sys.argv[3], int(sys.argv[4]))",
                    str(REPO), str(REPO / "bench"), str(directory), str(size_mib)], check=True)
    return directory / f"bench-{size_mib}.aci"


def _build(folder: str, size_mib: int) -> None:
    from registry.aci import ImageManifest, write_aci

    directory = Path(folder)
    rootfs = directory / f"rootfs-{size_mib}"
    rootfs.mkdir()
    for index in range(max(size_mib // FILE_MIB, 1)):
        with open(rootfs / f"blob-{index:04d}", "wb") as handle:
            remaining = FILE_MIB << 20
            while remaining > 0:
                # Alternate 1 MiB of random bytes with 1 MiB of text: gzip's typical mix.
                piece = os.urandom(1 << 20) if (remaining >> 20) % 2 else \
                    (TEXT * ((1 << 20) // len(TEXT) + 1))[: 1 << 20]
                handle.write(piece)
                remaining -= len(piece)
    manifest = ImageManifest.from_dict({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                        "name": "bench.example/big"})
    output = directory / f"bench-{size_mib}.aci"
    write_aci(manifest, rootfs, output, compression="gzip")
    for blob in rootfs.iterdir():
        blob.unlink()
    rootfs.rmdir()


def run_python(python: str, call: str, path: Path) -> tuple[float, float, int, str]:
    """(process wall seconds, in-process seconds, peak RSS KiB, image ID)."""
    # The development venv reads this checkout; the installed one its own copy.
    path_line = f"sys.path.insert(0, {str(REPO)!r})" if python == sys.executable else ""
    started = time.perf_counter()
    child = subprocess.Popen([python, "-c", CHILD.format(path_line=path_line, call=call,
                                                         path=str(path))],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{call} failed with status {status}")
    image_id, inner = output.split()
    return wall, float(inner), usage.ru_maxrss, image_id


def run_baseline(path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(f"gzip -dc '{path}' | sha512sum", shell=True, check=True,
                            capture_output=True, text=True)
    return time.perf_counter() - started, "sha512-" + result.stdout.split()[0]


ROWS = ("image_id_of", "read_aci", "image_id_of [editable]")


def measure(path: Path, repeat: int, python: str) -> dict[str, float]:
    best: dict[str, float] = {}
    rss: dict[str, int] = {}
    for _ in range(repeat):
        baseline, expected = run_baseline(path)
        best["baseline"] = min(best.get("baseline", baseline), baseline)
        for call in ROWS:
            interpreter = sys.executable if call.endswith("[editable]") else python
            wall, inner, peak, image_id = run_python(interpreter, call.split()[0], path)
            if image_id != expected:
                raise SystemExit(f"{call}: {image_id} differs from sha512sum's {expected}")
            best[call] = min(best.get(call, wall), wall)
            best[call + " (in-process)"] = min(best.get(call + " (in-process)", inner), inner)
            rss[call] = max(rss.get(call, 0), peak)
    return {**best, **{f"rss {key} KiB": value for key, value in rss.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--small-mib", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_package()
    with tempfile.TemporaryDirectory(prefix="bench-image-id-") as scratch:
        python = str(_installed(REPO, Path(scratch), "after").with_name("python"))
        for size in dict.fromkeys([args.size_mib, args.small_mib]):
            started = time.perf_counter()
            image = build_image(Path(scratch), size)
            print(f"\n{size} MiB of tar -> {image.stat().st_size / 2**20:.0f} MiB gzip ACI"
                  f" (built in {time.perf_counter() - started:.1f}s)")
            results = measure(image, args.repeat, python)
            baseline = results["baseline"]
            print(f"  gzip -dc | sha512sum      {baseline:7.3f}s")
            for call in ROWS:
                wall, inner = results[call], results[call + " (in-process)"]
                print(f"  {call:<22} process {wall:7.3f}s  ratio {wall / baseline:5.3f}"
                      f"   in-process {inner:7.3f}s  ratio {inner / baseline:5.3f}"
                      f"   peak RSS {results[f'rss {call} KiB'] / 1024:5.1f} MiB")
            image.unlink()
    print("\ngoal (issue 17): image_id_of's process ratio <= 0.4 at every size, peak RSS flat"
          " and < 64 MiB")


if __name__ == "__main__":
    main()
