"""Test images for the registry's tests, built with the format core's own writer."""

from __future__ import annotations

import os
from pathlib import Path

from registry.aci import ImageManifest, write_aci


def manifest_dict(name: str, *, version: str | None = "1.0", os_name: str | None = "linux",
                  arch: str | None = "amd64", extra_labels: dict[str, str] | None = None) -> dict:
    labels = []
    for label, value in (("version", version), ("os", os_name), ("arch", arch)):
        if value is not None:
            labels.append({"name": label, "value": value})
    labels += [{"name": k, "value": v} for k, v in (extra_labels or {}).items()]
    return {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name, "labels": labels,
            "app": {"exec": ["/bin/hello"], "user": "0", "group": "0"}}


def build_aci(directory: Path, name: str, *, version: str | None = "1.0", os_name: str | None = "linux",
              arch: str | None = "amd64", payload: bytes | None = None, filename: str | None = None,
              extra_labels: dict[str, str] | None = None, size: int = 0) -> Path:
    """An ACI holding /bin/hello (payload, default: unique to name+version) and optionally
    `size` bytes of incompressible data, so tests can make large images cheaply."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = filename or f"{name.replace('/', '_')}-{version}-{os_name}-{arch}"
    rootfs = directory / f"{stem}.rootfs" / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "bin" / "hello").write_bytes(payload or f"hello from {name} {version}\n".encode())
    if size:
        with (rootfs / "data.bin").open("wb") as out:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 1 << 20))
                out.write(chunk)
                remaining -= len(chunk)
    manifest = ImageManifest.from_dict(manifest_dict(name, version=version, os_name=os_name,
                                                     arch=arch, extra_labels=extra_labels))
    target = directory / f"{stem}.aci"
    write_aci(manifest, rootfs, target)
    return target
