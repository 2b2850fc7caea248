"""The build context: `.acbuild/` in the working directory, guarded by an advisory lock.

Layout (the same as acbuild's, so either tool recognises a build in progress):
    .acbuild/lock                  flock(2)ed by every command while it runs
    .acbuild/currentaci/manifest   the image manifest being built (appc JSON)
    .acbuild/currentaci/rootfs/    the image's root filesystem
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.aci import ManifestError, decode_json
from registry.build.errors import BuildError, LockHeld, NoBuildInProgress

CONTEXT_DIR_NAME = ".acbuild"


@dataclass(frozen=True)
class BuildContext:
    """Paths of one build context; `work_path` is acbuild's `--work-path` (default: cwd)."""

    work_path: Path

    @classmethod
    def at(cls, work_path: str | os.PathLike[str] = ".") -> BuildContext:
        return cls(Path(work_path).absolute())

    @property
    def directory(self) -> Path:
        return self.work_path / CONTEXT_DIR_NAME

    @property
    def lock_path(self) -> Path:
        return self.directory / "lock"

    @property
    def image_dir(self) -> Path:
        return self.directory / "currentaci"

    @property
    def manifest_path(self) -> Path:
        return self.image_dir / "manifest"

    @property
    def rootfs(self) -> Path:
        return self.image_dir / "rootfs"

    def exists(self) -> bool:
        return self.directory.is_dir()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the build's lock; a second builder in the same directory fails at once."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise NoBuildInProgress() from None
        except PermissionError:
            raise BuildError(
                f"permission denied opening {self.lock_path}:"
                " run as a user with appropriate privileges"
            ) from None
        except NotADirectoryError:
            raise BuildError(f"{self.directory} is not a build context directory") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld() from None
            # `end` may have removed the directory between our open and our lock.
            if not self.directory.is_dir():
                raise NoBuildInProgress()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def read_manifest(self) -> dict[str, Any]:
        """The manifest being built, as appc JSON; call with the lock held."""
        try:
            data = self.manifest_path.read_bytes()
        except FileNotFoundError:
            raise BuildError(
                f"build context {self.directory} is incomplete (no manifest):"
                ' discard it with "acbuild end" and begin again'
            ) from None
        try:
            # The format core's decoder: size and nesting are bounded before json parses it.
            return decode_json(data, "build context manifest")
        except ManifestError as error:
            raise BuildError(str(error)) from None

    def save_manifest(self, manifest_json: bytes) -> None:
        """Replace the manifest atomically, so a crash never leaves half a manifest."""
        replace_file_atomically(self.manifest_path, manifest_json)


def replace_file_atomically(target: Path, data: bytes, mode: int = 0o644) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
