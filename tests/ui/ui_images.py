"""ACIs for the UI's tests, written by the format core (registry.aci.write_aci)."""

from __future__ import annotations

import os
from pathlib import Path

from registry.aci import ImageManifest, write_aci


def build_aci(directory: Path, name: str, version: str | None = "1.0", *,
              os_name: str | None = "linux", arch: str | None = "amd64",
              padding: int = 0) -> Path:
    """An ACI holding /bin/hello, plus `padding` random (incompressible) bytes if asked."""
    labels = [{"name": k, "value": v}
              for k, v in (("version", version), ("os", os_name), ("arch", arch)) if v]
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name, "labels": labels,
        "app": {"exec": ["/bin/hello"], "user": "0", "group": "0"},
    })
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "bin" / "hello").write_text(f"hello from {name} {version}\n")
    if padding:
        (rootfs / "padding").write_bytes(os.urandom(padding))
    target = directory / f"{name.rsplit('/', 1)[-1]}-{version}.aci"
    write_aci(manifest, rootfs, target)
    return target
