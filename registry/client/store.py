"""The local image store: content-addressed ACI files under one directory and an SQLite index.

Layout of the store directory (`--dir`):

    index.db                     the SQLite index (images, remotes)
    images/<image-id>.aci        each image exactly as fetched (compressed as it was served)
    images/<image-id>.aci.asc    its signature, when it came with one
    trees/<image-id>/            rendered trees (manifest + rootfs, dependencies applied), shared
    used/<image-id>              an empty file: its mtime is when a pod last used the image
    tmp/                         downloads and imports in progress (same filesystem: atomic rename)
    locks/                       per-image lock files for rendering trees

An import writes a temporary file, learns the image ID while writing it (one streaming pass), then
hard-links it to its final name: two processes importing the same image end with one copy and no
error, and a reader never sees a half-written file.

`pyrkt run` of a stored image by ID asks nothing of the index (sqlite3: ~3 ms of a start with
its connection and a write): `summary` answers from the image's file and its rendered tree's
manifest when the ID names exactly one image file and its tree is rendered, `render(overlay=True)`
of a rendered tree needs no lookup, and a use is stamped on `used/<image-id>` (one utime), which
the index's readers (LAST USED, gc) take as the image's last use when it is later than the
index's own. Anything else (a name, an ambiguous or unknown prefix, a tree not rendered yet)
goes to the index, which answers and words errors as before. An image file has its index row
but for an instant of its import, between the link and the row, when its tree is not rendered
yet: a removal takes the tree and the files away before the row.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import time

from registry import jsontext
from registry.records import record

from .dirs import default_store_dir, plain_path
from .errors import ImageNotFound, StoreError

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them
# (the renderer, `.render`, too: a run of a rendered image by ID renders nothing).
# typing, collections.abc and contextlib too stay out of a run (~2.5 ms): names for the type
# checker only, and small classes for the two `with` blocks a run may enter. Paths are plain
# strings (os.path): pathlib loads re, fnmatch, urllib.parse and ipaddress (~6 ms); `path` and
# `signature_path` of a StoredImage are Paths, made on use, for the callers that want one;
# its times are the index's floats, and datetimes (~1 ms to import) only when asked for.
TYPE_CHECKING = False
_join = os.path.join
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta
    from pathlib import Path
    from types import TracebackType
    from typing import Any, BinaryIO

    from registry.aci import ACIInfo, ImageManifest

    from .index import Index, Remote
    from .streams import Sink

ID_PREFIX = "sha512-"
ID_LENGTH = len(ID_PREFIX) + 128


@record(frozen=True)
class StoredImage:
    """One image of the store, as its index row describes it."""

    id: str
    name: str
    labels: dict[str, str]
    size: int
    compression: str
    import_stamp: float  # seconds since the epoch, as the index keeps them
    last_used_stamp: float
    file: str  # the stored ACI file
    manifest_bytes: bytes
    has_signature: bool

    @property
    def path(self) -> Path:
        """The stored ACI file as a Path (`file` is the same as a str)."""
        from pathlib import Path

        return Path(self.file)

    @property
    def short_id(self) -> str:
        return self.id[: len(ID_PREFIX) + 32]

    @property
    def manifest(self) -> ImageManifest:
        from registry.aci import ImageManifest

        return ImageManifest.from_json(self.manifest_bytes)

    @property
    def manifest_dict(self) -> dict[str, Any]:
        return jsontext.loads(self.manifest_bytes)

    @property
    def signature_path(self) -> Path | None:
        path = self.file + ".asc"
        if not (self.has_signature and os.path.exists(path)):
            return None
        from pathlib import Path

        return Path(path)

    @property
    def import_time(self) -> datetime:
        """When the image was first stored (UTC)."""
        return _stamp(self.import_stamp)

    @property
    def last_used(self) -> datetime:
        """When a pod last used the image, or its import (UTC): `LAST USED`, and gc's clock."""
        return _stamp(self.last_used_stamp)

    def label(self, name: str) -> str | None:
        return self.labels.get(name)

    def matches(self, name: str, labels: dict[str, str] | None = None) -> bool:
        """The image has this name and every given label with the given value."""
        return self.name == name and all(self.labels.get(k) == v for k, v in (labels or {}).items())


@record(frozen=True)
class ImageSummary:
    """What a pod needs of a stored image (ImageStore.summary): its ID, name, labels and
    manifest exactly as stored."""

    id: str
    name: str
    labels: dict[str, str]
    manifest_bytes: bytes


def _stamp(value: float) -> datetime:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, UTC)


def normalize_id(text: str) -> str:
    """`sha512-abc...` from `sha512-abc...` or a bare hex prefix; lower-case."""
    given = text.strip()
    text = given.lower()
    if not text.startswith(ID_PREFIX):
        text = ID_PREFIX + text
    hexpart = text[len(ID_PREFIX):]
    if not hexpart or any(c not in "0123456789abcdef" for c in hexpart) or len(hexpart) > 128:
        raise ImageNotFound(f'"{given}" is not an image ID (sha512- and up to 128 hex digits)')
    return text


def _read_small(path: str) -> bytes:
    """A small file's bytes in two or three system calls (a buffered open() makes nine)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def looks_like_id(text: str) -> bool:
    try:
        normalize_id(text)
    except ImageNotFound:
        return False
    return text.strip().lower().startswith(ID_PREFIX)


class ImageStore:
    """Content-addressed ACI storage with an index. Safe to use from several processes at once."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = plain_path(directory) if directory is not None else default_store_dir()
        try:
            try:  # one read of the directory, rather than four mkdirs refused at every start
                present = set(os.listdir(self.directory))
            except FileNotFoundError:
                present = set()
            for sub in ("images", "trees", "tmp", "locks"):  # used/: at the first use
                if sub not in present:
                    os.makedirs(_join(self.directory, sub), exist_ok=True)
        except OSError as error:
            raise self._unusable(error) from error
        self._index: Index | None = None
        # the image `summary` last found rendered, from its tree (a run renders it next)
        self._seen_rendered: str | None = None
        if "index.db" not in present:
            self.index  # noqa: B018  (a new store gets its index at once, as it always did)

    def _unusable(self, error: OSError) -> StoreError:
        return StoreError(f"cannot use the image store at {self.directory}: "
                          f"{error.strerror or error}")

    @property
    def index(self) -> Index:
        """The SQLite index, opened on first use (see the module's docstring)."""
        if self._index is None:
            from .index import Index  # here: sqlite3's module loads with it

            try:
                self._index = Index(_join(self.directory, "index.db"))
            except OSError as error:
                raise self._unusable(error) from error
        return self._index

    def __repr__(self) -> str:
        return f"ImageStore({self.directory!r})"

    def close(self) -> None:
        """Let go of the index's connection (a later call opens it again)."""
        if self._index is not None:
            self._index.close()

    # paths -----------------------------------------------------------------------------------

    def _blob(self, image_id: str) -> str:
        return _join(self.directory, "images", f"{image_id}.aci")

    def _tree(self, image_id: str) -> str:
        return _join(self.directory, "trees", image_id)

    def _used(self, image_id: str) -> str:
        return _join(self.directory, "used", image_id)

    def temporary_file(self, suffix: str = ".part") -> _TemporaryFile:
        """`with store.temporary_file() as (path, handle):` a new file inside the store (same
        filesystem as the images), open for writing; removed unless kept.

        The caller keeps it by renaming or linking it away before the block ends.
        """
        return _TemporaryFile(_join(self.directory, "tmp"), suffix)

    # imports ---------------------------------------------------------------------------------

    def import_aci(self, path: str | os.PathLike[str], *, remote: Remote | None = None,
                   signature: bytes | None = None) -> StoredImage:
        """Copy a local ACI into the store (validated, hashed while copied) and index it."""
        from registry.aci import ACIError

        source = plain_path(path)
        try:
            src = open(source, "rb")
        except OSError as error:
            raise StoreError(f"cannot read {source}: {error.strerror or error}") from error
        with src, self.temporary_file() as (temp, handle):
            try:
                info = self.read_into(src, handle)
            except ACIError as error:
                raise StoreError(f"{source} is not a valid ACI: {error}") from error
            return self.commit(temp, info, remote=remote, signature=signature)

    def read_into(self, source: BinaryIO | Any, sink: BinaryIO,
                  on_bytes: Callable[[int], None] | None = None,
                  also: Sink | None = None) -> ACIInfo:
        """Validate and hash `source` with registry.aci.read_aci while copying it into `sink`
        (and into `also`, e.g. the signature check's feed, in the same pass).

        The image must also be one a registry could host (registry.aci.check_hostable: its
        name, and a version label usable as a URL segment), as the registry checks on upload.
        """
        from registry.aci import check_hostable, read_aci

        from .streams import TeeReader, WriteBehind  # here: threads and queues, for imports only

        behind = WriteBehind(sink.fileno())  # the fsync below then waits for the tail only

        def written(count: int) -> None:
            behind.wrote(count)
            if on_bytes is not None:
                on_bytes(count)

        tee = TeeReader(source, sink, *([also] if also is not None else []), on_bytes=written)
        try:
            info = read_aci(tee)
            check_hostable(str(info.manifest.name),
                           {label.name: label.value for label in info.manifest.labels})
            tee.drain()  # read_aci reads to EOF; anything after it must still be stored verbatim
        finally:
            behind.close()
        sink.flush()
        os.fsync(sink.fileno())
        return info

    def commit(self, temp: str | os.PathLike[str], info: ACIInfo, *, remote: Remote | None = None,
               signature: bytes | None = None) -> StoredImage:
        """Publish a fully written and validated temporary file as image `info.image_id`."""
        image_id = info.image_id
        final = self._blob(image_id)
        try:
            os.link(temp, final)
        except FileExistsError:
            pass  # the same image (same ID) is already stored: keep the first copy
        except OSError as error:
            raise StoreError(f"cannot store {image_id}: {error.strerror or error}") from error
        if signature is not None:
            self._write_atomic(final + ".asc", signature)
        manifest = info.manifest
        labels = {label.name: label.value for label in manifest.labels}
        self.index.add_image(image_id=image_id, name=str(manifest.name), labels=labels,
                             manifest=bytes(info.manifest_bytes), size=os.stat(final).st_size,
                             compression=str(info.compression or "none"),
                             has_signature=signature is not None)
        if remote is not None:
            from .index import Remote

            self.index.save_remote(Remote(remote.url, remote.signature_url, remote.etag,
                                          remote.max_age, remote.download_time or time.time(),
                                          image_id))
        return self.get(image_id)

    def _write_atomic(self, path: str, data: bytes) -> None:
        with self.temporary_file(".tmp") as (temp, handle):
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temp, path)

    # queries ---------------------------------------------------------------------------------

    def _row_to_image(self, row: Any, used: float | None = None) -> StoredImage:
        """The image of an index row; `used`: its `used/` stamp's time (looked up when None)."""
        if used is None:
            used = self._used_stamp(row["id"])
        return StoredImage(
            id=row["id"], name=row["name"], labels=jsontext.loads(row["labels"]), size=row["size"],
            compression=row["compression"], import_stamp=row["import_time"],
            last_used_stamp=max(row["last_used"], used), file=self._blob(row["id"]),
            manifest_bytes=bytes(row["manifest"]), has_signature=bool(row["has_signature"]))

    def _used_stamp(self, image_id: str) -> float:
        try:
            return os.stat(self._used(image_id)).st_mtime
        except FileNotFoundError:
            return 0.0

    def _used_stamps(self) -> dict[str, float]:
        """Every `used/` stamp's time by image ID (one read of the folder, for listings)."""
        try:
            with os.scandir(_join(self.directory, "used")) as entries:
                return {entry.name: entry.stat().st_mtime for entry in entries}
        except FileNotFoundError:
            return {}

    def _stamp_use(self, image_id: str) -> None:
        """`used/<image-id>`'s mtime becomes now: one utime, no index transaction. A hint, as
        the index's own column was (never synced to disk), so a failure is not an error."""
        path = self._used(image_id)
        try:
            try:
                os.utime(path)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError:
            pass

    def get(self, id_or_prefix: str) -> StoredImage:
        """The image with this ID or unambiguous ID prefix (`sha512-` optional)."""
        wanted = normalize_id(id_or_prefix)
        rows = self.index.rows_with_prefix(wanted)
        if not rows:
            raise ImageNotFound(f"no image with ID {wanted} in the store")
        if len(rows) > 1:
            ids = sorted(row["id"] for row in rows)
            raise ImageNotFound(f"image ID {wanted} is ambiguous: it matches "
                                f"{', '.join(i[:39] for i in ids)}; give more digits")
        return self._row_to_image(rows[0])

    def summary(self, id_or_prefix: str) -> ImageSummary:
        """`get(id_or_prefix)`'s ID, name, labels and manifest, from the store's files when the
        ID (or prefix) names exactly one image file whose tree is rendered; else `get`'s,
        errors included. See the module's docstring."""
        wanted = normalize_id(id_or_prefix)
        image_id = self._rendered(wanted)
        if image_id is not None:
            try:
                manifest = _read_small(_join(self._tree(image_id), "manifest"))
                doc = jsontext.loads(manifest)
                summary = ImageSummary(image_id, doc["name"], {
                    label["name"]: label["value"] for label in doc.get("labels") or []},
                    manifest)
                self._seen_rendered = image_id  # (`render` need not look again)
                return summary
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                pass  # not the manifest an import stored (or gone): the index knows
        image = self.get(wanted)
        return ImageSummary(image.id, image.name, image.labels, image.manifest_bytes)

    def _rendered(self, wanted: str) -> str | None:
        """The ID of the one image file the normalized ID or prefix names, when its shared tree
        is rendered; None when the index must answer."""
        if len(wanted) == ID_LENGTH:
            image_id = wanted
            if not os.path.exists(self._blob(image_id)):
                return None
        else:
            try:
                names = [name for name in os.listdir(_join(self.directory, "images"))
                         if name.startswith(wanted) and name.endswith(".aci")]
            except OSError:
                return None
            if len(names) != 1:
                return None  # none, or ambiguous: the index's answer and words
            image_id = names[0][:-len(".aci")]
        return image_id if os.path.isdir(_join(self._tree(image_id), "rootfs")) else None

    def find(self, name: str, labels: dict[str, str] | None = None) -> StoredImage | None:
        """The most recently imported image with this name and (at least) these labels."""
        rows = self.index.image_rows("WHERE name = ? ORDER BY import_time DESC", (name,))
        used = self._used_stamps() if rows else {}
        candidates = [self._row_to_image(row, used.get(row["id"], 0.0)) for row in rows]
        for image in candidates:
            if image.matches(name, labels):
                return image
        return None

    def list(self) -> list[StoredImage]:
        rows = self.index.image_rows("ORDER BY import_time, id")
        used = self._used_stamps() if rows else {}
        return [self._row_to_image(row, used.get(row["id"], 0.0)) for row in rows]

    def aci_path(self, image_id: str) -> str:
        return self.get(image_id).file

    def touch(self, image_id: str) -> None:
        """Record that an image was used now (`LAST USED` in `pyrkt image list`)."""
        self._stamp_use(self.get(image_id).id)

    def remote(self, url: str) -> Remote | None:
        remote = self.index.remote(url)
        if remote is not None and not os.path.exists(self._blob(remote.image_id)):
            return None
        return remote

    def save_remote(self, remote: Remote) -> None:
        self.index.save_remote(remote)

    # removal ---------------------------------------------------------------------------------

    def remove(self, image_id: str) -> StoredImage:
        """Delete an image, its signature and its rendered tree; returns what was removed."""
        image = self.get(image_id)
        # the files first, the row last: a stored file and its rendered tree always have their
        # row (what `summary` relies on), and a removal cut short is finished by another
        tree, trash = self._tree(image.id), None
        if os.path.exists(tree):
            trash = _join(self.directory, "tmp", f"trash-{image.id}-{os.getpid()}-{time.time_ns()}")
            os.replace(tree, trash)  # vanish atomically, then delete at leisure
        for path in (image.file, image.file + ".asc", self._used(image.id)):
            _unlink(path)
        self.index.remove_image(image.id)
        if trash is not None:
            from .render import remove_tree  # here: see the imports above

            remove_tree(trash)
        return image

    def gc(self, grace_period: timedelta | None = None, *, in_use: set[str] | None = None,
           now: datetime | None = None) -> builtins.list[StoredImage]:
        """Remove images not used within `grace_period` (default 24 hours), except `in_use` and
        their dependencies."""
        from datetime import UTC, datetime, timedelta

        if grace_period is None:
            grace_period = timedelta(hours=24)
        moment = now or datetime.now(UTC)
        keep = set(in_use or ())
        for image_id in list(keep):
            try:
                keep.update(img.id for img, _ in self.dependency_chain(image_id))
            except StoreError:  # (a DependencyError too)
                pass
        removed = []
        for image in self.list():
            if image.id in keep or moment - image.last_used < grace_period:
                continue
            removed.append(self.remove(image.id))
        self._clean_tmp(moment)
        self._clean_stamps()
        return removed

    def _clean_stamps(self) -> None:
        """Drop `used/` stamps of images no longer stored (a run stamping as one was removed)."""
        for image_id in self._used_stamps():
            if not os.path.exists(self._blob(image_id)):
                _unlink(self._used(image_id))

    def _clean_tmp(self, moment: datetime) -> None:
        """Drop leftovers of interrupted imports older than a day (partial downloads excluded)."""
        with os.scandir(_join(self.directory, "tmp")) as entries:
            found = list(entries)
        for entry in found:
            if entry.name.startswith("partial-"):
                continue
            try:
                if moment.timestamp() - entry.stat(follow_symlinks=False).st_mtime > 86400:
                    if entry.is_dir():
                        from .render import remove_tree  # here: see the imports above

                        remove_tree(entry.path, ignore_errors=False)
                    else:
                        os.unlink(entry.path)
            except OSError:
                pass

    # reading images back ---------------------------------------------------------------------

    def verify(self, image_id: str, also: Sink | None = None) -> ACIInfo:
        """Re-read a stored image: it must still hash to its ID and be a valid ACI. Every byte
        read is also written to `also` (e.g. the signature check's feed), in the same pass."""
        from registry.aci import ACIError, read_aci

        from .streams import TeeReader  # here: see read_into

        image = self.get(image_id)
        try:
            with open(image.file, "rb") as handle:
                if also is None:
                    info = read_aci(handle)
                else:
                    tee = TeeReader(handle, also)
                    info = read_aci(tee)
                    tee.drain()
        except (OSError, ACIError) as error:
            raise StoreError(f"image {image.short_id} is damaged: {error}") from error
        if info.image_id != image.id:
            raise StoreError(f"image {image.short_id} is damaged: its content now hashes to "
                             f"{info.image_id[:39]}")
        return info

    def export(self, image_id: str, dest: str | os.PathLike[str], *, overwrite: bool = False) -> str:
        """Write the stored ACI file (exactly as fetched) to `dest`, atomically."""
        image = self.get(image_id)
        target = plain_path(dest)
        if os.path.exists(target) and not overwrite:
            raise StoreError(f"{target} exists; pass --overwrite to replace it")
        temp = _join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
        import shutil  # here: see render.remove_tree

        try:
            shutil.copyfile(image.file, temp)
            os.replace(temp, target)
        except OSError as error:
            _unlink(temp)
            raise StoreError(f"cannot write {target}: {error.strerror or error}") from error
        return target

    def extract(self, image_id: str, dest: str | os.PathLike[str], *,
                rootfs_only: bool = False) -> str:
        """Extract one image (no dependencies) safely into a new directory `dest`."""
        from registry.aci import ACIError, extract_aci

        image = self.get(image_id)
        target = plain_path(dest)
        try:
            extract_aci(image.file, target, rootfs_only=rootfs_only)
        except ACIError as error:
            raise StoreError(f"cannot extract {image.short_id}: {error}") from error
        return target

    # rendering -------------------------------------------------------------------------------

    def dependency_chain(self, image_id: str) -> builtins.list[tuple[StoredImage, int]]:
        """The image and its dependencies, flattened as appc's acirenderer does.

        Returns (image, level) pairs, the image itself first; a dependency listed later in a
        manifest comes earlier (it overrides the ones before it); upper entries win.
        """
        from .render import DependencyError  # here: see the imports above

        top = self.get(image_id)
        chain: builtins.list[tuple[StoredImage, int]] = [(top, 0)]
        position = 0
        while position < len(chain):
            image, level = chain[position]
            if level > 64:
                raise DependencyError(f"dependencies of {top.name} nest deeper than 64 levels "
                                      f"(a cycle?)")
            for dep in image.manifest_dict.get("dependencies") or []:
                chain.insert(position + 1, (self._resolve_dependency(image, dep), level + 1))
            position += 1
        return chain

    def _resolve_dependency(self, parent: StoredImage, dep: dict[str, Any]) -> StoredImage:
        from .render import DependencyError  # here: see the imports above

        name = dep.get("imageName", "")
        labels = {item["name"]: item["value"] for item in dep.get("labels") or []}
        if dep.get("imageID"):
            try:
                found = self.get(dep["imageID"])
            except ImageNotFound:
                raise DependencyError(f"{parent.name} depends on {name} ({dep['imageID'][:39]}),"
                                      f" which is not in the store; fetch it first") from None
            if found.name != name:
                raise DependencyError(f"{parent.name} depends on {name} ({dep['imageID'][:39]}),"
                                      f" but that ID is the image {found.name}")
            return found
        matching = self.find(name, labels)
        if matching is None:
            wanted = ",".join(f"{k}={v}" for k, v in labels.items())
            raise DependencyError(f"{parent.name} depends on {name}{' ' + wanted if wanted else ''}"
                                  f", which is not in the store; fetch it first")
        return matching

    def render(self, image_id: str, dest: str | os.PathLike[str] | None = None, *,
               overlay: bool = False, rootfs_only: bool = False) -> str:
        """Render an image with its dependencies applied and pathWhitelist honoured.

        The result is an image layout: `manifest` (the image's own) and `rootfs/`.
        - `overlay=False`: a private copy is made at `dest` (which must not exist, or be an empty
          directory); returns `dest`. With `rootfs_only`, `dest` gets the rootfs contents.
        - `overlay=True`: the store's shared tree for the image is rendered once (later calls
          reuse it) and its path is returned, to be used read-only, e.g. as an overlayfs
          lowerdir; `dest` is not written.
        """
        if overlay and len(image_id) == ID_LENGTH and (image_id == self._seen_rendered or (
                image_id == normalize_id(image_id) and self._rendered(image_id) is not None)):
            self._stamp_use(image_id)  # the shared tree is there: no lookup in the index
            return self._tree(image_id)
        image = self.get(image_id)
        self._stamp_use(image.id)
        if overlay:
            return self._shared_tree(image)
        if dest is None:
            raise StoreError("render needs a destination directory unless overlay=True")
        target = plain_path(dest)
        if os.path.exists(target):
            if not os.path.isdir(target) or os.listdir(target):
                raise StoreError(f"cannot render into {target}: it exists and is not an empty "
                                 f"directory")
        self._render_to(image, target, rootfs_only=rootfs_only)
        return target

    def _render_to(self, image: StoredImage, target: str, *, rootfs_only: bool = False) -> None:
        from registry.aci import ACIError

        from .render import DependencyError, remove_tree, render_layers  # here: see above

        parent = os.path.dirname(target) or "."
        import tempfile  # here: only a render that is not cached yet needs it

        try:
            os.makedirs(parent, exist_ok=True)
            work = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.render-", dir=parent)
        except OSError as error:
            raise StoreError(f"cannot render {image.short_id} into {target}: "
                             f"{error.strerror or error}") from error
        try:
            layers = [(img.file, level, img.manifest_dict) for img, level in
                      self.dependency_chain(image.id)]
            out = _join(work, "out")
            render_layers(layers, image.manifest_bytes, out, work)
            if os.path.exists(target):
                os.rmdir(target)
            os.replace(_join(out, "rootfs") if rootfs_only else out, target)
        except ACIError as error:
            raise StoreError(f"cannot render {image.short_id}: {error}") from error
        except DependencyError as error:
            raise StoreError(str(error)) from error
        except OSError as error:
            raise StoreError(f"cannot render {image.short_id} into {target}: "
                             f"{error.strerror or error}") from error
        finally:
            remove_tree(work)

    def _shared_tree(self, image: StoredImage) -> str:
        tree = self._tree(image.id)
        if os.path.isdir(_join(tree, "rootfs")):
            return tree
        with self._lock(f"tree-{image.id}"):
            if not os.path.isdir(_join(tree, "rootfs")):  # another process may have rendered it meanwhile
                self._render_to(image, tree)
        return tree

    def _lock(self, name: str) -> _Lock:
        return _Lock(_join(self.directory, "locks", f"{name}.lock"))


class _TemporaryFile:
    """ImageStore.temporary_file's block: the file is made on entry, closed and removed on exit."""

    def __init__(self, directory: str, suffix: str) -> None:
        self.directory, self.suffix = directory, suffix

    def __enter__(self) -> tuple[str, BinaryIO]:
        import tempfile  # here: a run of a stored image writes no temporary file (~1 ms)

        self.handle = tempfile.NamedTemporaryFile(dir=self.directory, suffix=self.suffix,
                                                  delete=False)
        self.path: str = self.handle.name
        return self.path, self.handle  # type: ignore[return-value]

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self.handle.close()
        finally:
            _unlink(self.path)


class _Lock:
    """An exclusive flock on a lock file for the block (ImageStore._lock)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        except BaseException:
            self.handle.close()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        finally:
            self.handle.close()


def _unlink(path: str) -> None:
    """Path.unlink(missing_ok=True)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
