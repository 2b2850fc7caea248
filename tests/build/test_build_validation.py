"""acbuild applies the format core's one validation: hostile manifests and unextractable
paths are clear one-line errors at `begin`; `write` refuses what no registry would host."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from build_helpers import Acbuild
from hostile_archives import NESTED_MANIFEST, aci_bytes


def _no_traceback(error: str) -> None:
    assert "Traceback" not in error and "RecursionError" not in error
    lines = [line for line in error.strip().splitlines()
             if not line.startswith("manifest is missing")]  # begin's notice for tarballs
    assert len(lines) == 1, error


def test_begin_from_an_aci_with_a_deeply_nested_manifest(acb: Acbuild, tmp_path: Path) -> None:
    deep = tmp_path / "deep.aci"
    deep.write_bytes(aci_bytes(NESTED_MANIFEST))
    error = acb.fails("begin", str(deep))
    assert "nested deeper than 64 levels" in error
    _no_traceback(error)
    assert not (acb.work / ".acbuild").exists()


def test_begin_from_a_rootfs_tarball_with_an_unextractable_name(acb: Acbuild,
                                                               tmp_path: Path) -> None:
    tarball = tmp_path / "long.tar"
    with tarfile.open(tarball, "w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("etc/" + "n" * 300)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    error = acb.fails("begin", str(tarball))
    assert "longer than the 255 Linux allows" in error
    _no_traceback(error)
    assert not (acb.work / ".acbuild").exists()


def test_begin_from_an_aci_with_a_path_over_4095_bytes(acb: Acbuild, tmp_path: Path) -> None:
    image = tmp_path / "long.aci"
    image.write_bytes(aci_bytes(b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"x"}',
                                name="rootfs/" + "/".join(["d" * 99] * 50)))
    error = acb.fails("begin", str(image))
    assert "longer than the 4095 Linux can extract" in error
    _no_traceback(error)


def test_write_refuses_a_version_label_no_registry_would_serve(acb: Acbuild) -> None:
    acb("begin")
    acb("set-name", "example.com/app")
    acb("label", "add", "version", "../../../x")
    error = acb.fails("write", "app.aci")
    assert "bad version label '../../../x'" in error
    _no_traceback(error)
    assert not (acb.work / "app.aci").exists()
