"""Local sources: `docker save` tarballs and OCI image layouts (a directory or a tar of one)."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from registry.aci import ArchiveError, normalize
from registry.docker.blobs import load_json, parse_digest, read_limited
from registry.docker.errors import DockerError
from registry.docker.image import (
    INDEX_TYPES,
    Layer,
    SourceImage,
    diff_ids,
    layer_descriptors,
    select_platform,
)
from registry.docker.reference import (
    DockerReference,
    local_reference,
    parse_reference,
    sanitize_identifier,
)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class _Tree:
    """Read-only access to the files of a directory or a tar archive, by relative path."""

    def __init__(self, describe: str) -> None:
        self.describe = describe

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def opener(self, path: str) -> Callable[[], BinaryIO]:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        with self.opener(path)() as stream:
            return read_limited(stream, f"{self.describe}: {path}")

    @staticmethod
    def clean(path: str) -> str:
        """A path inside the archive or layout, by the format core's rules (no `..`, no
        absolute path, nothing Linux could not name)."""
        try:
            return normalize(path)
        except ArchiveError as error:
            raise DockerError(f"path {path!r} escapes the archive ({error})",
                              reason=error.reason) from None


class _DirTree(_Tree):
    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root.resolve()

    def _path(self, path: str) -> Path:
        target = (self.root / self.clean(path)).resolve()
        if target != self.root and self.root not in target.parents:
            raise DockerError(f"path {path!r} escapes {self.root}", reason="path-traversal")
        return target

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def opener(self, path: str) -> Callable[[], BinaryIO]:
        target = self._path(path)
        if not target.is_file():
            raise DockerError(f"{self.describe}: {path} is missing", reason="not-found")
        return lambda: target.open("rb")


class _TarTree(_Tree):
    def __init__(self, archive: tarfile.TarFile, describe: str) -> None:
        super().__init__(describe)
        self.archive = archive
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in archive.getmembers():
            if not member.isfile():
                continue
            name = self.clean(member.name)
            if name in self.members:
                raise DockerError(f"{describe}: {name}: duplicate entry in archive",
                                  reason="duplicate-entry")
            self.members[name] = member

    def exists(self, path: str) -> bool:
        return self.clean(path) in self.members

    def opener(self, path: str) -> Callable[[], BinaryIO]:
        member = self.members.get(self.clean(path))
        if member is None:
            raise DockerError(f"{self.describe}: {path} is missing", reason="not-found")
        return lambda: self.archive.extractfile(member)  # type: ignore[return-value]


@contextmanager
def _open_tree(path: Path) -> Iterator[_Tree]:
    if path.is_dir():
        yield _DirTree(path)
        return
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise DockerError(f"{path}: not a tar archive or OCI layout directory: {err}",
                          reason="bad-manifest") from err
    with archive:
        yield _TarTree(archive, str(path))


@contextmanager
def open_local_image(path: Path, *, image: str | None = None) -> Iterator[SourceImage]:
    """Open a `docker save` tarball or an OCI layout (directory or tar) as a SourceImage.

    `image` picks one image when the archive holds several: a `NAME:TAG` of a docker save
    archive, or the ref name (usually the tag) of an OCI layout.
    """
    if not path.exists():
        raise DockerError(f"{path}: no such file or directory", reason="not-found")
    with _open_tree(path) as tree:
        if tree.exists("manifest.json"):
            yield _docker_save_image(tree, path, image)
        elif tree.exists("oci-layout") and tree.exists("index.json"):
            yield _oci_layout_image(tree, path, image)
        else:
            raise DockerError(f"{path}: neither a docker save archive (manifest.json) nor an OCI "
                              "image layout (oci-layout, index.json)", reason="bad-manifest")


def _fallback_reference(path: Path, tag: str | None) -> DockerReference:
    """docker save archive without RepoTags: named after the file, as Docker Hub did."""
    name = sanitize_identifier(_stem(path)).replace("~", "-")
    return parse_reference(f"{name}:{tag}" if tag else name)


def _stem(path: Path) -> str:
    """The file or directory name without extensions (`sample.tar.gz` -> `sample`)."""
    return path.resolve().name.split(".")[0] or "image"


def _docker_save_image(tree: _Tree, path: Path, image: str | None) -> SourceImage:
    try:
        entries = json.loads(tree.read("manifest.json"))
    except ValueError as err:
        raise DockerError(f"{path}: manifest.json is not JSON: {err}", reason="bad-manifest") from err
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DockerError(f"{path}: manifest.json lists no images", reason="bad-manifest")
    chosen, repo_tag = _choose_saved(entries, image, path)
    config_path = chosen.get("Config")
    layer_paths = chosen.get("Layers")
    if not isinstance(config_path, str) or not isinstance(layer_paths, list):
        raise DockerError(f"{path}: manifest.json entry without Config or Layers",
                          reason="bad-manifest")
    config_digest = _digest_from_blob_name(config_path)
    config = load_json(tree.read(config_path), f"image config {config_path}", config_digest)
    ids = diff_ids(config, len(layer_paths))
    layers = []
    for layer_path, diff_id in zip(layer_paths, ids, strict=True):
        if not isinstance(layer_path, str):
            raise DockerError(f"{path}: bad layer entry {layer_path!r}", reason="bad-manifest")
        digest = _digest_from_blob_name(layer_path)
        layers.append(Layer(tree.opener(layer_path), digest if digest != diff_id else None,
                            diff_id, layer_path))
    ref = parse_reference(repo_tag) if repo_tag else _fallback_reference(path, None)
    if image is None:
        # docker2aci v0.17.2 names an archive's image by its repository alone: without --image
        # it never learns a registry (`example/app`, `library/busybox`), and writes no
        # registryurl or originalname; with --image, the given name is parsed as a reference.
        ref = DockerReference("", ref.repository, ref.tag, None, "")
    legacy = _legacy_ids(tree, repo_tag, len(layers))
    return SourceImage(ref, config, config_digest, None, layers, kind="docker-save",
                       legacy_ids=legacy)


def _legacy_ids(tree: _Tree, repo_tag: str | None, count: int) -> list[str] | None:
    """The v1 layer IDs (bottom first) that `repositories` and the layers' `json` files name
    for this image, as docker2aci v0.17.2 read them; None when the archive has none."""
    if not repo_tag or not tree.exists("repositories"):
        return None
    try:
        repositories = json.loads(tree.read("repositories"))
        wanted = parse_reference(repo_tag)
        top = None
        for name, tags in repositories.items():
            known = parse_reference(str(name))
            if (known.registry, known.repository) == (wanted.registry, wanted.repository):
                top = (tags or {}).get(wanted.tag)
        ids: list[str] = []
        while isinstance(top, str) and re.fullmatch(r"[0-9a-f]{64}", top) and len(ids) <= count:
            ids.append(top)
            parent = json.loads(tree.read(f"{top}/json")).get("parent")
            top = parent if parent else None
    except (ValueError, AttributeError, DockerError, KeyError, OSError):
        return None
    return list(reversed(ids)) if len(ids) == count else None


def _choose_saved(entries: list[dict[str, Any]], image: str | None, path: Path
                  ) -> tuple[dict[str, Any], str | None]:
    if image is None:
        if len(entries) > 1:
            names = [t for e in entries for t in e.get("RepoTags") or []]
            raise DockerError(f"{path} holds {len(entries)} images; pick one with --image "
                              f"({', '.join(names) or 'all untagged'})", reason="bad-reference")
        tags = entries[0].get("RepoTags") or []
        return entries[0], tags[0] if tags else None
    wanted = _identity(parse_reference(image))
    for entry in entries:
        for tag in entry.get("RepoTags") or []:
            if tag == image or _identity(parse_reference(tag)) == wanted:
                return entry, tag
    names = [t for e in entries for t in e.get("RepoTags") or []]
    raise DockerError(f"{path} has no image {image!r}; it holds "
                      f"{', '.join(names) or 'only untagged images'}", reason="not-found")


def _identity(ref: DockerReference) -> tuple[str, str, str | None]:
    return ref.registry, ref.repository, ref.tag


def _digest_from_blob_name(name: str) -> str | None:
    """`blobs/sha256/HEX` and the classic `HEX.json` name their content's digest."""
    parts = name.strip("/").split("/")
    candidates = []
    if len(parts) >= 2 and parts[-2] in ("sha256", "sha512"):
        candidates.append(f"{parts[-2]}:{parts[-1]}")
    if parts[-1].endswith(".json"):
        candidates.append(f"sha256:{parts[-1][:-5]}")
    for candidate in candidates:
        try:
            parse_digest(candidate)
            return candidate
        except DockerError:
            continue
    return None


def _blob_path(digest: str) -> str:
    algorithm, hexpart = parse_digest(digest)
    return f"blobs/{algorithm}/{hexpart}"


def _oci_layout_image(tree: _Tree, path: Path, image: str | None) -> SourceImage:
    layout = load_json(tree.read("oci-layout"), "oci-layout")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise DockerError(f"{path}: unsupported imageLayoutVersion "
                          f"{layout.get('imageLayoutVersion')!r}", reason="unsupported")
    index = load_json(tree.read("index.json"), "index.json")
    descriptor = _choose_descriptor(index, image, path)
    annotations = descriptor.get("annotations") or {}
    # Nested indexes (multi-platform images) resolve to the host's platform.
    for _ in range(8):
        digest = descriptor.get("digest")
        if not isinstance(digest, str):
            raise DockerError(f"{path}: index entry without a digest", reason="bad-manifest")
        document = load_json(tree.read(_blob_path(digest)), f"manifest {digest}", digest)
        if descriptor.get("mediaType") in INDEX_TYPES or document.get("mediaType") in INDEX_TYPES:
            descriptor = select_platform(document)
            continue
        break
    else:
        raise DockerError(f"{path}: index nesting too deep", reason="bad-manifest")
    manifest_digest = digest
    config_digest = document["config"]["digest"] if isinstance(document.get("config"), dict) else None
    descriptors = layer_descriptors(document)
    config = load_json(tree.read(_blob_path(str(config_digest))), f"image config {config_digest}",
                       str(config_digest))
    ids = diff_ids(config, len(descriptors))
    layers = [Layer(tree.opener(_blob_path(d["digest"])), d["digest"], diff_id, d["digest"])
              for d, diff_id in zip(descriptors, ids, strict=True)]
    return SourceImage(_layout_reference(annotations, path), config, str(config_digest),
                       manifest_digest, layers)


def _choose_descriptor(index: dict[str, Any], image: str | None, path: Path) -> dict[str, Any]:
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if not manifests:
        raise DockerError(f"{path}: index.json lists no manifests", reason="bad-manifest")
    if image is None:
        if len(manifests) == 1:
            return manifests[0]
        if all(isinstance(m.get("platform"), dict) for m in manifests):
            return select_platform(index)
        names = [str((m.get("annotations") or {}).get(REF_NAME)) for m in manifests]
        raise DockerError(f"{path} holds {len(manifests)} images; pick one with --image "
                          f"({', '.join(names)})", reason="bad-reference")
    for manifest in manifests:
        notes = manifest.get("annotations") or {}
        if image in (notes.get(REF_NAME), notes.get(CONTAINERD_NAME)):
            return manifest
    names = []
    for manifest in manifests:
        notes = manifest.get("annotations") or {}
        name = notes.get(CONTAINERD_NAME) or notes.get(REF_NAME)
        if name:
            names.append(str(name))
    raise DockerError(f"{path} has no image named {image!r}; it holds "
                      f"{', '.join(names) or 'only unnamed images'}", reason="not-found")


def _layout_reference(annotations: dict[str, Any], path: Path) -> DockerReference:
    full = annotations.get(CONTAINERD_NAME)
    if isinstance(full, str):
        return parse_reference(full)
    ref_name = annotations.get(REF_NAME)
    return local_reference(ref_name if isinstance(ref_name, str) else "", _stem(path))
