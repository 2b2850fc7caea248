"""Helpers shared by the tests/aci files: a rootfs tree exercising every entry kind, and a
portable description of a tree for comparing before/after."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

MANIFEST = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/tree",
            "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"},
                       {"name": "arch", "value": "amd64"}],
            "app": {"exec": ["/bin/hello"], "user": "0", "group": "0"}}

LONG_NAME = "a-rather-long-directory-name-" * 5  # > 100 bytes: needs pax/GNU long names


def make_tree(root: Path) -> Path:
    """A rootfs with files (random, text, empty, executable), nested and read-only
    directories, long and non-ASCII names, absolute and relative symlinks and a hard link."""
    rng = random.Random(42)
    root.mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin" / "hello").write_bytes(b"#!/bin/sh\necho hello\n")
    (root / "bin" / "hello").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "config").write_text("key = value\n" * 500)
    (root / "etc" / "empty").write_bytes(b"")
    (root / "etc" / "secret").write_bytes(b"s3cret")
    (root / "etc" / "secret").chmod(0o600)
    (root / "data").mkdir()
    (root / "data" / "random.bin").write_bytes(rng.randbytes(300_000))
    os.link(root / "data" / "random.bin", root / "data" / "hardlink.bin")
    deep = root / LONG_NAME / "nested" / LONG_NAME
    deep.mkdir(parents=True)
    (deep / ("file-" + "x" * 120)).write_text("deep\n")
    (root / "unicodé-名前.txt").write_text("non-ascii name\n")
    (root / "bin" / "sh").symlink_to("/bin/hello")
    (root / "etc" / "config-link").symlink_to("config")
    (root / "etc" / "up-link").symlink_to("../bin/hello")
    readonly = root / "readonly"
    readonly.mkdir()
    (readonly / "inside").write_text("inside a read-only directory\n")
    (root / "sticky").mkdir()
    (root / "sticky").chmod(0o1777)
    readonly.chmod(0o555)
    return root


def describe(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, content or link target) for everything below root."""
    result: dict[str, tuple] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[relative] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[relative] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                result[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return result


def make_writable(root: Path) -> None:
    """So pytest can delete trees holding read-only directories."""
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)
