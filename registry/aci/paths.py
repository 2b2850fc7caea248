"""The path and link rules every reader of archives applies, whatever the archive's source
(an ACI, a Docker/OCI layer, a rootfs tarball): one normaliser, one traversal rule, one
link-escape rule, one duplicate rule and Linux's length limits. Errors are ArchiveErrors
whose `.reason` names the rule broken (see errors.py)."""

from __future__ import annotations

from registry.aci.errors import ArchiveError

# Linux refuses longer names with ENAMETOOLONG: NAME_MAX per component, PATH_MAX (4096,
# counting the terminating NUL) per path. An archive no one can extract is refused up front.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095

# Entry types as tar spells them (the tarstream constants are the same strings).
REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = "0", "1", "2", "3", "4", "5", "6"
DEVICE_TYPES = frozenset((CHAR, BLOCKDEV, FIFO))
IMPLICIT_DIRECTORY = "implicit-directory"  # a parent no entry has described (yet)


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def check_length(path: str, what: str = "path") -> None:
    """Refuse a path Linux cannot create: a component over 255 bytes, the whole over 4095."""
    encoded = _encoded(path)
    if len(encoded) > MAX_PATH_BYTES:
        raise ArchiveError(f"{what} {path[:60]!r}...: {len(encoded)} bytes, longer than the"
                           f" {MAX_PATH_BYTES} Linux can extract", reason="path-too-long")
    if len(encoded) > MAX_NAME_BYTES:
        for part in encoded.split(b"/"):
            if len(part) > MAX_NAME_BYTES:
                shown = part[:40].decode("utf-8", "replace")
                raise ArchiveError(f"{what} {path[:60]!r}...: a component of {len(part)} bytes"
                                   f" ({shown!r}...), longer than the {MAX_NAME_BYTES} Linux"
                                   " allows", reason="path-too-long")


def normalize(name: str) -> str:
    """The entry's path without `./`, empty components or a trailing slash; "" for the root.
    Absolute names, `..` components and names Linux cannot create are refused outright."""
    if name.startswith("/"):
        raise ArchiveError(f"{name!r}: absolute path in archive", reason="absolute-path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{name!r}: path traversal ('..') in archive", reason="path-traversal")
    path = "/".join(parts)
    check_length(path)
    return path


def symlink_escapes(depth: int, target: str) -> bool:
    """Whether a relative symlink target climbs above the tree's root from a link sitting
    `depth` directories below it. Absolute targets are resolved against the image's root at
    run time, so they stay inside."""
    if target.startswith("/"):
        return False
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class TreeRules:
    """The per-entry rules of one tree, fed its entries in archive order.

    `root` is the tree's top inside the archive: "rootfs" for an ACI (entries outside it are
    the layout checker's business), "" for a layer or a rootfs tarball. Paths given to `check`
    are already normalized. Only paths are remembered (one dict entry per path), never data.
    """

    def __init__(self, root: str = "", *, allow_devices: bool = True,
                 later_duplicate_replaces: bool = False) -> None:
        self.root = root
        self.allow_devices = allow_devices
        # An ACI holds each path once. A Docker/OCI layer is applied as tar extracts it, the
        # later of two entries for one path replacing the earlier (as Docker does), so there
        # the duplicate rule lets the later one win instead of refusing it.
        self.later_duplicate_replaces = later_duplicate_replaces
        self._prefix = f"{root}/" if root else ""
        self._where = f"{root}/" if root else "the archive's root"
        self.seen: dict[str, str] = {}  # normalized path -> entry type (or IMPLICIT_DIRECTORY)

    def check(self, path: str, type_: str, type_name: str, linkname: str = "") -> str:
        """Accept or refuse the entry; returns a hard link's target normalized ("" otherwise).

        Refused: the same path twice, anything below a symlink or a non-directory, a symlink
        with an empty target or one climbing out of the tree, a hard link to anything but an
        earlier regular file of the tree, a device or fifo when devices are not allowed.
        """
        earlier = self.seen.get(path)
        if earlier is not None:
            if earlier != IMPLICIT_DIRECTORY and not self.later_duplicate_replaces:
                raise ArchiveError(f"{path}: duplicate entry in archive",
                                   reason="duplicate-entry")
            if earlier in (IMPLICIT_DIRECTORY, DIRECTORY) and type_ != DIRECTORY \
                    and self._has_children(path):
                raise ArchiveError(f"{path}: a {type_name}, but earlier entries were inside it",
                                   reason="bad-parent")
        self._check_parents(path)
        target = ""
        if type_ == SYMLINK:
            self._check_symlink(path, linkname)
        elif type_ == HARDLINK:
            target = self._check_hardlink(path, linkname)
        elif type_ in DEVICE_TYPES and not self.allow_devices:
            raise ArchiveError(f"{path}: {type_name} refused (devices and fifos are not"
                               " allowed here)", reason="device-node")
        self.seen[path] = type_
        return target

    def _has_children(self, path: str) -> bool:
        # Only an implicit directory is known to have children without a scan; a described
        # one is looked up (rare: only a layer's later duplicate of a directory gets here).
        if self.seen.get(path) == IMPLICIT_DIRECTORY:
            return True
        prefix = path + "/"
        return any(other.startswith(prefix) for other in self.seen)

    def _check_parents(self, path: str) -> None:
        """No entry may sit below a symlink (writing it would follow the link) or a file."""
        position = path.find("/", len(self._prefix))
        while position != -1:
            parent = path[:position]
            parent_type = self.seen.get(parent)
            if parent_type is None:
                self.seen[parent] = IMPLICIT_DIRECTORY  # extraction will create it
            elif parent_type not in (DIRECTORY, IMPLICIT_DIRECTORY):
                reason = "link-escape" if parent_type == SYMLINK else "bad-parent"
                raise ArchiveError(f"{path}: its parent {parent} is not a directory",
                                   reason=reason)
            position = path.find("/", position + 1)

    def _check_symlink(self, path: str, linkname: str) -> None:
        if not linkname:
            raise ArchiveError(f"{path}: symlink with an empty target", reason="bad-link")
        check_length(linkname, f"{path}: symlink target")
        depth = path.count("/") - (1 if self.root else 0)  # directories between root and link
        if symlink_escapes(depth, linkname):
            raise ArchiveError(f"{path}: symlink to {linkname!r} points outside"
                               f" {self._where}", reason="link-escape")

    def _check_hardlink(self, path: str, linkname: str) -> str:
        outside = ArchiveError(f"{path}: hard link to {linkname!r} points outside"
                               f" {self._where}", reason="link-escape")
        try:
            target = normalize(linkname)
        except ArchiveError:
            raise outside from None
        if not target or not target.startswith(self._prefix):
            raise outside
        if self.seen.get(target) not in (REGULAR, HARDLINK):
            raise ArchiveError(f"{path}: hard link to {linkname!r}, which is not an"
                               " earlier file of the archive", reason="link-escape")
        return target
