"""Helpers for the builder's tests: an acbuild runner in one working directory, and a reader
for the ACIs it writes that does not rely on the code under test."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from registry.cli.build import acbuild


@dataclass
class WrittenACI:
    manifest: dict
    members: dict[str, tarfile.TarInfo]
    contents: dict[str, bytes]
    uncompressed_sha512: str

    def labels(self) -> dict[str, str]:
        return {label["name"]: label["value"] for label in self.manifest.get("labels", [])}


def open_aci(path: Path) -> WrittenACI:
    """Read an ACI with the standard library only: members, file contents, manifest, hash."""
    raw = gzip.decompress(path.read_bytes())
    members: dict[str, tarfile.TarInfo] = {}
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        for member in archive:
            name = member.name.rstrip("/")
            assert name not in members, f"duplicate entry {name}"
            members[name] = member
            if member.isreg():
                contents[name] = archive.extractfile(member).read()
    return WrittenACI(json.loads(contents["manifest"]), members, contents,
                      "sha512-" + hashlib.sha512(raw).hexdigest())


class Acbuild:
    """Runs acbuild commands in-process in one working directory, like a shell script would."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None) -> Result:
        result = self.runner.invoke(acbuild, list(args), input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"acbuild {' '.join(args)}: {result.output}"
        return result

    def fails(self, *args: str, code: int = 1) -> str:
        """Run a command that must fail; returns its stderr."""
        result = self(*args, ok=False)
        assert result.exit_code == code, f"acbuild {' '.join(args)} exited {result.exit_code}: {result.output}"
        return result.stderr

    def manifest(self) -> dict:
        return json.loads(self("cat-manifest").stdout)

    def state(self) -> bytes:
        """The saved manifest, byte for byte: to show a failed command changed nothing."""
        return (self.work / ".acbuild" / "currentaci" / "manifest").read_bytes()

    @property
    def rootfs(self) -> Path:
        return self.work / ".acbuild" / "currentaci" / "rootfs"
