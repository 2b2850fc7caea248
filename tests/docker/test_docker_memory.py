"""Conversion streams: a layer much larger than the memory it may use converts fine."""

from __future__ import annotations

import re
import subprocess
import sys

import oci_images

LAYER_MIB = 96


def test_peak_memory_stays_far_below_the_image_size(tmp_path, out_dir):
    image = oci_images.write_oci_layout(tmp_path / "big", [
        [oci_images.directory("big"), oci_images.Entry("big/blob1", size=LAYER_MIB << 19)],
        [oci_images.whiteout("big/blob1"), oci_images.Entry("big/blob2", size=LAYER_MIB << 19)],
    ], compress=False)
    # VmHWM read by the converting process itself: a child's rusage would also count the
    # memory of the (large) pytest process it was spawned from.
    code = ("from registry.docker.convert import convert; "
            f"convert({str(image.layout)!r}, {str(out_dir)!r}); "
            "print(open('/proc/self/status').read())")
    status = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    peak_mib = int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024
    assert peak_mib < 60, f"peak RSS {peak_mib:.0f} MiB for a {LAYER_MIB} MiB image"
    import tarfile

    with tarfile.open(out_dir / "big-latest.aci", "r:gz") as tar:
        names = {m.name: m.size for m in tar}
    assert names["rootfs/big/blob2"] == LAYER_MIB << 19
    assert "rootfs/big/blob1" not in names
