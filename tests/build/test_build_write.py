"""`write`: valid ACIs for actool, refusals that leave files alone, reproducible image IDs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from build_helpers import Acbuild, open_aci


@pytest.fixture
def named(acb: Acbuild, tmp_path: Path) -> Acbuild:
    acb("begin")
    acb("set-name", "example.com/app")
    return acb


def _make_sources(source: Path) -> None:
    (source / "bin").mkdir(parents=True, exist_ok=True)
    (source / "bin" / "app").write_text("#!/bin/sh\nexit 0\n")
    (source / "bin" / "app").chmod(0o755)
    (source / "etc").mkdir(exist_ok=True)
    (source / "etc" / "app.conf").write_text("debug = false\n")
    (source / "cpu.json").write_text('{"request": "250m", "limit": "500m"}')


def _full_build(acb: Acbuild, source: Path) -> None:
    """Every kind of manifest field and file the builder can put into an image. Sources are
    named relative to the working directory, as a build script names them (acbuild records
    each command line in the image, so absolute temporary paths would differ per build)."""
    if not source.exists():
        _make_sources(source)
    local = source.relative_to(acb.work) if source.is_relative_to(acb.work) else source
    acb("begin")
    acb("set-name", "example.com/full")
    acb("copy-to-dir", str(local / "bin" / "app"), "/usr/bin")
    acb("copy", str(local / "etc"), "/etc/app")
    acb("set-exec", "--", "/usr/bin/app", "--serve")
    acb("set-working-directory", "/var/lib/app")
    acb("set-user", "1000")
    acb("set-group", "1000")
    acb("environment", "add", "APP_MODE", "production")
    acb("label", "add", "version", "1.2.3")
    acb("annotation", "add", "homepage", "https://example.com/app")
    acb("port", "add", "http", "tcp", "8080", "--count", "2")
    acb("mount", "add", "data", "/var/lib/app", "--read-only")
    acb("isolator", "add", "resource/cpu", str(local / "cpu.json"))
    acb("dependency", "add", "example.com/base", "--label", "version=1")


def test_full_build_passes_actool(acb: Acbuild, actool_validate) -> None:
    _full_build(acb, acb.work / "src")
    result = acb("write", "full.aci")
    actool_validate(acb.work / "full.aci")
    image = open_aci(acb.work / "full.aci")
    assert result.stdout == ""  # acbuild v0.4.0 prints nothing on success
    assert image.uncompressed_sha512.startswith("sha512-")
    app = image.manifest["app"]
    assert app["exec"] == ["/usr/bin/app", "--serve"]
    assert app["ports"][0]["count"] == 2 and app["mountPoints"][0]["readOnly"] is True
    assert image.manifest["dependencies"][0]["imageName"] == "example.com/base"
    assert image.contents["rootfs/etc/app/app.conf"] == b"debug = false\n"
    assert image.members["rootfs/usr/bin/app"].mode & 0o777 == 0o755
    assert set(image.members) >= {"manifest", "rootfs", "rootfs/usr", "rootfs/usr/bin"}
    assert all(name == "manifest" or name == "rootfs" or name.startswith("rootfs/")
               for name in image.members)


def test_write_refuses_unnamed_image(acb: Acbuild) -> None:
    acb("begin")
    error = acb.fails("write", "out.aci")
    assert "write: can't write ACI, name was never set" in error
    assert not (acb.work / "out.aci").exists()


def test_write_refuses_to_overwrite_without_flag(named: Acbuild) -> None:
    existing = named.work / "out.aci"
    existing.write_bytes(b"precious")
    error = named.fails("write", "out.aci")
    assert "write: ACI already exists: out.aci" in error
    assert existing.read_bytes() == b"precious"
    named("write", "--overwrite", "out.aci")
    assert open_aci(existing).manifest["name"] == "example.com/app"


def test_write_leaves_no_temporary_files(named: Acbuild) -> None:
    named("write", "out.aci")
    named.fails("write", "out.aci")
    assert sorted(p.name for p in named.work.iterdir()) == [".acbuild", "out.aci"]


def test_write_to_missing_directory_or_directory(named: Acbuild) -> None:
    assert "does not exist" in named.fails("write", "nowhere/out.aci")
    (named.work / "adir").mkdir()
    assert "is a directory" in named.fails("write", "--overwrite", "adir")


def test_write_warns_when_exec_never_set(named: Acbuild, actool_validate) -> None:
    result = named("write", "noexec.aci")
    assert "warning: exec command was never set." in result.stderr
    actool_validate(named.work / "noexec.aci")


def test_write_keeps_the_build(named: Acbuild) -> None:
    named("write", "one.aci")
    named("set-exec", "--", "/bin/true")
    named("write", "two.aci")
    assert open_aci(named.work / "two.aci").manifest["app"]["exec"] == ["/bin/true"]


def test_same_build_twice_gives_same_image_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               actool_validate) -> None:
    """Two builds in different directories at different times, from sources with different
    mtimes: the same image ID."""
    ids = []
    for attempt, mtime in ((1, 1_000_000_000), (2, 1_600_000_000)):
        work = tmp_path / f"work{attempt}"
        work.mkdir()
        monkeypatch.chdir(work)
        _make_sources(work / "src")
        for path in (work / "src").rglob("*"):
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        _full_build(Acbuild(work), work / "src")
        Acbuild(work)("write", "same.aci")
        actool_validate(work / "same.aci")
        ids.append(open_aci(work / "same.aci").uncompressed_sha512)
        assert (work / "same.aci").read_bytes()  # written
    assert ids[0] == ids[1]
    first, second = (tmp_path / "work1/same.aci").read_bytes(), (tmp_path / "work2/same.aci").read_bytes()
    assert first == second


def test_source_date_epoch_sets_entry_times(named: Acbuild, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("x")
    named("copy", str(tmp_path / "f"), "/f")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    named("write", "epoch.aci")
    image = open_aci(named.work / "epoch.aci")
    assert {member.mtime for member in image.members.values()} == {1234567890}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567891")
    named("write", "--overwrite", "epoch.aci")
    assert open_aci(named.work / "epoch.aci").uncompressed_sha512 != image.uncompressed_sha512


def test_written_manifest_is_the_built_one(named: Acbuild) -> None:
    named("label", "add", "version", "0.1")
    built = named.manifest()
    named("write", "out.aci")
    assert open_aci(named.work / "out.aci").manifest == built
    assert json.loads(named("cat-manifest").stdout) == built


def test_write_reports_host_errors_cleanly(named: Acbuild, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host refusal (here: no permission to create the file) is one clear line, no traceback,
    and nothing is left behind."""
    import registry.build.output as output

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(output.tempfile, "mkstemp", refuse)
    error = named.fails("write", "out.aci")
    assert "\nwrite: Permission denied: " in error  # after the no-exec warning
    assert sorted(p.name for p in named.work.iterdir()) == [".acbuild"]
