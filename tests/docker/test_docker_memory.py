"""Conversion streams: a layer much larger than the memory it may use converts fine."""

from __future__ import annotations

import os
import subprocess
import sys

import oci_images

LAYER_MIB = 96


def test_peak_memory_stays_far_below_the_image_size(tmp_path, out_dir):
    image = oci_images.write_oci_layout(tmp_path / "big", [
        [oci_images.directory("big"), oci_images.Entry("big/blob1", size=LAYER_MIB << 19)],
        [oci_images.whiteout("big/blob1"), oci_images.Entry("big/blob2", size=LAYER_MIB << 19)],
    ], compress=False)
    code = ("from registry.docker.convert import convert; "
            f"convert({str(image.layout)!r}, {str(out_dir)!r})")
    process = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    peak_mib = usage.ru_maxrss / 1024
    assert peak_mib < 80, f"peak RSS {peak_mib:.0f} MiB for a {LAYER_MIB} MiB image"
    import tarfile

    with tarfile.open(out_dir / "library-big-latest.aci", "r:gz") as tar:
        names = {m.name: m.size for m in tar}
    assert names["rootfs/big/blob2"] == LAYER_MIB << 19
    assert "rootfs/big/blob1" not in names
