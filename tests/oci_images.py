"""Build small Docker/OCI images for tests: layer tars, OCI image layouts, docker-save archives.

Reusable by any test folder (`import oci_images`): the docker2aci tests convert these, the
registry's /v2/ tests push them with skopeo. Layers are written to files as they are built, so
the same helpers make a 512 MiB image for the benchmark without holding it in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MTIME = 1_600_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Entry:
    """One tar member. `kind`: file, dir, symlink, hardlink. `data` or `source` (a host file)
    or `size` (that many pseudo-random bytes, generated while writing) give a file's content."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    link: str = ""
    source: Path | None = None
    size: int | None = None
    uid: int = 0
    gid: int = 0


def file(path: str, data: bytes | str = b"", mode: int = 0o644, **kw: Any) -> Entry:
    return Entry(path, "file", data.encode() if isinstance(data, str) else data, mode, **kw)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode=mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", link=target, mode=0o777)


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, "hardlink", link=target)


def whiteout(path: str) -> Entry:
    """A `.wh.NAME` marker removing `path` from the layers below."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory_path: str) -> Entry:
    """The `.wh..wh..opq` marker: the directory's lower-layer content is hidden."""
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq")


class _PseudoRandom(io.RawIOBase):
    """Incompressible-looking bytes, reproducible, produced in chunks (never all at once)."""

    def __init__(self, size: int, seed: str) -> None:
        self.remaining = size
        self.random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.remaining, 1 << 20)
        if n <= 0:
            return 0
        buffer[:n] = self.random.randbytes(n)
        self.remaining -= n
        return n


def write_layer_tar(target: Path | io.BufferedIOBase, entries: Iterable[Entry]) -> None:
    """Write a layer tar (uncompressed) with the given members, in order."""
    with tarfile.open(fileobj=target if not isinstance(target, Path) else None,
                      name=target if isinstance(target, Path) else None,
                      mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.uid, info.gid = MTIME, entry.uid, entry.gid
            content: io.RawIOBase | io.BufferedIOBase | None = None
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, entry.mode or 0o755
            elif entry.kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
            elif entry.kind == "hardlink":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, entry.link, entry.mode or 0o644
            else:
                info.mode = entry.mode if entry.mode is not None else 0o644
                if entry.source is not None:
                    info.size = entry.source.stat().st_size
                    content = entry.source.open("rb")
                elif entry.size is not None:
                    info.size = entry.size
                    content = _PseudoRandom(entry.size, entry.path)
                else:
                    info.size = len(entry.data)
                    content = io.BytesIO(entry.data)
            tar.addfile(info, content)
            if content is not None:
                content.close()


@dataclass
class Blob:
    digest: str
    size: int
    media_type: str
    diff_id: str | None = None


@dataclass
class OCIImage:
    """An OCI image layout on disk and the digests a test may check against."""

    layout: Path
    tag: str
    manifest: Blob
    config: Blob
    layers: list[Blob] = field(default_factory=list)

    def blob_path(self, digest: str) -> Path:
        algorithm, hexpart = digest.split(":", 1)
        return self.layout / "blobs" / algorithm / hexpart


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _store_blob(layout: Path, source: Path, media_type: str) -> Blob:
    digest = _sha256_file(source)
    target = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    return Blob(digest, target.stat().st_size, media_type)


def _store_json(layout: Path, document: dict[str, Any], media_type: str) -> Blob:
    temp = layout / "blobs" / ".json.tmp"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(json.dumps(document, indent=1).encode())
    return _store_blob(layout, temp, media_type)


def default_config(**runtime: Any) -> dict[str, Any]:
    """A runtime config with every field docker2aci maps, overridable per test."""
    config = {
        "Entrypoint": ["/bin/hello"],
        "Cmd": ["first", "second"],
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world"],
        "WorkingDir": "/data",
        "User": "1000:100",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}, "/var/cache/app": {}},
        "Labels": {"org.opencontainers.image.source": "https://example.com/src"},
    }
    config.update(runtime)
    return config


def write_oci_layout(layout: Path, layers: list[list[Entry]], *, tag: str = "latest",
                     runtime: dict[str, Any] | None = None, compress: bool = True,
                     architecture: str = "amd64", variant: str | None = None,
                     created: str = "2024-05-06T07:08:09.123456789Z",
                     author: str = "pyrkt tests <tests@example.com>") -> OCIImage:
    """Write an OCI image layout (one image, tagged `tag`) whose layers hold `layers`."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    blobs: list[Blob] = []
    for number, entries in enumerate(layers):
        raw = layout / "blobs" / f".layer{number}.tar"
        raw.parent.mkdir(parents=True, exist_ok=True)
        write_layer_tar(raw, entries)
        diff_id = _sha256_file(raw)
        if compress:
            packed = raw.with_suffix(".tar.gz")
            with raw.open("rb") as src, gzip.GzipFile(packed, "wb", compresslevel=1, mtime=0) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            raw.unlink()
            raw = packed
        blob = _store_blob(layout, raw, OCI_LAYER_GZIP if compress else OCI_LAYER)
        blob.diff_id = diff_id
        blobs.append(blob)
    config_doc: dict[str, Any] = {
        "created": created, "author": author, "architecture": architecture, "os": "linux",
        "config": runtime if runtime is not None else default_config(),
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(blobs))],
    }
    if variant:
        config_doc["variant"] = variant
    config = _store_json(layout, config_doc, OCI_CONFIG)
    manifest_doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in blobs],
    }
    manifest = _store_json(layout, manifest_doc, OCI_MANIFEST)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest.digest, "size": manifest.size,
        "annotations": {REF_NAME: tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    return OCIImage(layout, tag, manifest, config, blobs)


def sample_layers(hello: Path | None = None) -> list[list[Entry]]:
    """Two layers exercising what squashing must get right.

    Lower: a tree with files, a symlink, a hard link pair, and an `opq/` directory.
    Upper: deletes `gone.txt` (whiteout), makes `opq/` opaque (old content hidden, new kept),
    replaces `keep.txt` and overwrites the target of the lower hard link (the link must keep
    the old content), adds a new hard link pair.
    """
    hello_entry = file("bin/hello", source=hello, mode=0o755) if hello else \
        file("bin/hello", "#!/bin/sh\necho hello\n", mode=0o755)
    lower = [
        directory("bin"), hello_entry,
        directory("data"), file("data/a.txt", "alpha\n"), file("data/b.txt", "beta\n"),
        file("gone.txt", "to be removed\n"),
        file("keep.txt", "old keep\n"),
        symlink("link-to-keep", "keep.txt"),
        file("hl-target", "original linked content\n"),
        hardlink("hl-link", "hl-target"),
        directory("opq"), file("opq/old1", "old 1\n"), directory("opq/sub"),
        file("opq/sub/old2", "old 2\n"),
        directory("etc"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        directory("var"), directory("var/cache"), directory("var/cache/app"),
    ]
    upper = [
        whiteout("gone.txt"),
        directory("opq"), opaque("opq"), file("opq/new", "new in upper\n"),
        file("keep.txt", "new keep\n", mode=0o600),
        file("hl-target", "replaced target\n"),
        directory("data"), file("data/c.txt", "gamma\n"),
        hardlink("data/c-link", "data/c.txt"),
        whiteout("data/b.txt"),
    ]
    return [lower, upper]


# What the squashed rootfs of sample_layers() contains: path -> (type, content or link target).
SAMPLE_ROOTFS: dict[str, tuple[str, str]] = {
    "bin": ("dir", ""), "bin/hello": ("file", "#!/bin/sh\necho hello\n"),
    "data": ("dir", ""), "data/a.txt": ("file", "alpha\n"), "data/c.txt": ("file", "gamma\n"),
    "data/c-link": ("hardlink", "data/c.txt"),
    "keep.txt": ("file", "new keep\n"), "link-to-keep": ("symlink", "keep.txt"),
    "hl-target": ("file", "replaced target\n"), "hl-link": ("file", "original linked content\n"),
    "opq": ("dir", ""), "opq/new": ("file", "new in upper\n"),
    "etc": ("dir", ""), "etc/passwd": ("file", "root:x:0:0:root:/root:/bin/sh\n"),
    "var": ("dir", ""), "var/cache": ("dir", ""), "var/cache/app": ("dir", ""),
}


def rootfs_listing(aci: Path) -> dict[str, tuple[str, str]]:
    """The rootfs of an ACI as path -> (type, content or link target), for comparisons."""
    listing: dict[str, tuple[str, str]] = {}
    with tarfile.open(aci, "r:*") as tar:
        for member in tar:
            if not member.name.startswith("rootfs/"):
                continue
            path = member.name[len("rootfs/"):]
            if member.isdir():
                listing[path] = ("dir", "")
            elif member.issym():
                listing[path] = ("symlink", member.linkname)
            elif member.islnk():
                listing[path] = ("hardlink", member.linkname[len("rootfs/"):])
            else:
                extracted = tar.extractfile(member)
                assert extracted is not None
                listing[path] = ("file", extracted.read().decode(errors="replace"))
    return listing


def aci_manifest(aci: Path) -> dict[str, Any]:
    with tarfile.open(aci, "r:*") as tar:
        extracted = tar.extractfile("manifest")
        assert extracted is not None
        return json.loads(extracted.read())


def skopeo_copy(source: str, destination: str, *extra: str) -> None:
    """Run Debian's skopeo with no policy surprises (an insecure-accept-anything policy file)."""
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "pyrkt-skopeo-policy.json"
    if not policy.exists():
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    subprocess.run(["skopeo", "--policy", str(policy), "copy", "--quiet", *extra, source,
                    destination], check=True, capture_output=True, text=True)


def to_docker_archive(image: OCIImage, archive: Path, name: str) -> Path:
    """`docker save`-format tarball of the same image, made by skopeo from the layout."""
    skopeo_copy(f"oci:{image.layout}:{image.tag}", f"docker-archive:{archive}:{name}")
    return archive


def multi_platform_copy(image: OCIImage, layout: Path, *, tag: str, other_architecture: str) -> Path:
    """A copy of `image`'s layout at `layout` whose one manifest sits in a nested index (tagged
    `tag`) next to a linux/`other_architecture` entry with no blob: whoever reads it must pick
    the linux/amd64 manifest by platform."""
    shutil.copytree(image.layout, layout)
    index = json.loads((layout / "index.json").read_text())
    real = dict(index["manifests"][0], platform={"os": "linux", "architecture": "amd64"})
    real.pop("annotations")
    other = dict(real, digest="sha256:" + "0" * 64,
                 platform={"os": "linux", "architecture": other_architecture})
    nested = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [other, real]}
    body = json.dumps(nested).encode()
    digest = hashlib.sha256(body).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(body)
    index["manifests"] = [{"mediaType": OCI_INDEX, "digest": f"sha256:{digest}",
                           "size": len(body), "annotations": {REF_NAME: tag}}]
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def iter_blobs(image: OCIImage) -> Iterator[Blob]:
    yield image.manifest
    yield image.config
    yield from image.layers
