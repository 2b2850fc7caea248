"""`write`: the build context becomes an ACI file, atomically and reproducibly."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from registry.aci import ImageManifest, write_aci
from registry.build.errors import BuildError
from registry.progress import Progress


def write_image(manifest: ImageManifest, rootfs: Path, output: Path, *, overwrite: bool,
                progress: Progress | None = None) -> str:
    """Write the ACI to `output` and return its image ID.

    The image is written to a temporary sibling and published by a rename, so readers never
    see half an ACI and a failed write leaves any earlier file untouched. The format core's
    reproducible mode (sorted entries, fixed owners, mtimes from SOURCE_DATE_EPOCH) makes the
    same build give the same image ID.
    """
    refuse_unwritable(output, overwrite=overwrite)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            # As root the rootfs's owners are real (copied or extracted as such) and kept, as
            # acbuild keeps them; an unprivileged build owns every file itself, so 0:0 it is.
            image_id = write_aci(manifest, rootfs, handle, compression="gzip", reproducible=True,
                                 preserve_ownership=os.geteuid() == 0,
                                 progress=_named(progress, output.name))
        os.chmod(temporary, 0o644)
        _publish(Path(temporary), output, overwrite=overwrite)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return image_id


def _named(progress: Progress | None, label: str) -> Progress | None:
    """`progress` with the output's name as the task's label (the writer sees a handle)."""
    if progress is None:
        return None
    chosen = progress
    return lambda _label, total: chosen(label, total)


def refuse_unwritable(output: Path, *, overwrite: bool) -> None:
    if output.is_dir():
        raise BuildError(f"{output} is a directory")
    if not output.parent.is_dir():
        raise BuildError(f"directory {output.parent} does not exist")
    if output.exists() and not overwrite:
        raise BuildError(f"ACI already exists: {output} (use --overwrite to replace it)")


def _publish(temporary: Path, output: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, output)
        return
    # A hard link never replaces: a file that appeared meanwhile still is not clobbered.
    try:
        os.link(temporary, output)
    except FileExistsError:
        raise BuildError(f"ACI already exists: {output} (use --overwrite to replace it)") from None
    except OSError:
        # A filesystem without hard links: fall back to the check made before writing.
        os.replace(temporary, output)
        return
    temporary.unlink()
