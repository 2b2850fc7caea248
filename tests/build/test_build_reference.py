"""acbuild as v0.4.0 behaves: history annotations, a quiet `write`, exit codes and help for the
common mistakes (read from acbuild v0.4.0's acbuild/*.go)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from build_helpers import Acbuild

from registry.aci import ImageManifest, write_aci
from registry.build.edits import go_quote


def _history(acb: Acbuild) -> dict[str, str]:
    return {a["name"]: a["value"] for a in acb.manifest().get("annotations", [])
            if "/acbuild/command-" in a["name"]}


def _base_image(tmp_path: Path, annotations: list[dict[str, str]]) -> Path:
    rootfs = tmp_path / "base" / "rootfs"
    rootfs.mkdir(parents=True)
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/base",
        "annotations": annotations})
    out = tmp_path / "base.aci"
    write_aci(manifest, rootfs, out)
    return out


def test_history_uses_v040s_prefix_and_numbers_on_across_both_prefixes(acb: Acbuild,
                                                                       tmp_path: Path) -> None:
    # A base written by an older acbuild (coreos.com/...) and then by v0.4.0 (appc.io/...).
    base = _base_image(tmp_path, [
        {"name": "coreos.com/acbuild/command-1", "value": 'acbuild set-name "example.com/base"'},
        {"name": "coreos.com/acbuild/command-2", "value": 'acbuild label add "a" "b"'},
        {"name": "appc.io/acbuild/command-3", "value": 'acbuild set-user "1"'},
        {"name": "example.com/unrelated", "value": "kept"},
    ])
    acb("begin", str(base))
    acb("set-name", "example.com/app")
    acb("set-exec", "--", "/bin/app", "--flag", "two words")
    history = _history(acb)
    assert history["appc.io/acbuild/command-4"] == 'acbuild set-name "example.com/app"'
    assert history["appc.io/acbuild/command-5"] == \
        'acbuild set-exec "/bin/app" "--flag" "two words"'
    assert "coreos.com/acbuild/command-1" in history  # the base's history is kept
    assert not any(name.startswith("coreos.com/") and name.endswith(("-4", "-5"))
                   for name in history)


def test_history_from_an_empty_begin_starts_at_one(acb: Acbuild) -> None:
    acb("begin")
    acb("label", "add", "version", "1")
    assert _history(acb) == {"appc.io/acbuild/command-1": 'acbuild label add "version" "1"'}


@pytest.mark.parametrize(("text", "quoted"), [
    ("plain", '"plain"'), ('say "hi"', r'"say \"hi\""'), ("tab\there", r'"tab\there"'),
    ("back\\slash", r'"back\\slash"'), ("\x01", r'"\x01"'), ("é", '"é"'), ("\xa0", r'"\u00a0"'),
    ("new\nline", r'"new\nline"'),
])
def test_history_quotes_as_gos_percent_q(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_write_prints_nothing_unless_debug(acb: Acbuild) -> None:
    acb("begin")
    acb("set-name", "example.com/quiet")
    acb("set-exec", "--", "/bin/true")
    written = acb("write", "quiet.aci")
    assert written.stdout == "" and written.stderr == ""
    debug = acb("--debug", "write", "--overwrite", "quiet.aci")
    assert debug.stdout == "" and "Writing ACI to quiet.aci" in debug.stderr


def test_set_exec_without_arguments_prints_its_help_and_exits_1(acb: Acbuild) -> None:
    acb("begin")
    before = acb.state()
    result = acb("set-exec", ok=False)
    assert result.exit_code == 1
    assert "Usage: acbuild set-exec" in result.stdout and result.stderr == ""
    assert acb.state() == before


def test_wrong_number_of_arguments_exits_1_saying_so(acb: Acbuild) -> None:
    acb("begin")
    assert acb.fails("set-name", "a.com/x", "b.com/y") == "set-name: incorrect number of arguments\n"
    assert acb.fails("label", "add", "version") == "label add: incorrect number of arguments\n"


def test_a_missing_isolator_file_exits_1(acb: Acbuild, tmp_path: Path) -> None:
    acb("begin")
    error = acb.fails("isolator", "add", "resource/cpu", str(tmp_path / "missing.json"))
    assert error.startswith("isolator add: cannot read ") and "No such file" in error
    assert "isolators" not in acb.manifest().get("app", {})


def test_an_isolator_from_a_file_and_its_history(acb: Acbuild, tmp_path: Path) -> None:
    acb("begin")
    value = tmp_path / "cpu.json"
    value.write_text(json.dumps({"request": "250m", "limit": "500m"}))
    acb("isolator", "add", "resource/cpu", str(value))
    assert acb.manifest()["app"]["isolators"][0]["name"] == "resource/cpu"
    assert _history(acb)["appc.io/acbuild/command-1"] == \
        f'acbuild isolator add "resource/cpu" "{value}"'


def test_an_unknown_flag_exits_3_as_cobra_errors_do(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "registry.cli.build", "--bogus"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and "No such option" in result.stderr


def test_version_prints_both_versions_and_takes_no_arguments(acb: Acbuild) -> None:
    shown = acb("version")
    assert shown.stdout.startswith("acbuild version ") and "\nappc version 0.8.11\n" in shown.stdout
    assert acb.fails("version", "extra") == "version: incorrect number of arguments\n"


def test_modify_edits_an_aci_in_place(acb: Acbuild, tmp_path: Path, actool_validate) -> None:
    acb("begin")
    acb("set-name", "example.com/modified")
    acb("set-exec", "--", "/bin/old")
    acb("write", "app.aci")
    acb("end")
    aci = acb.work / "app.aci"
    before = aci.read_bytes()
    acb("--modify", str(aci), "set-exec", "--", "/bin/new", "arg")
    assert aci.read_bytes() != before
    actool_validate(aci)
    shown = json.loads(acb("--modify", str(aci), "cat-manifest").stdout)
    assert shown["app"]["exec"] == ["/bin/new", "arg"]
    history = {a["name"]: a["value"] for a in shown["annotations"]}
    assert history["appc.io/acbuild/command-3"] == 'acbuild set-exec "/bin/new" "arg"'
    assert not (acb.work / ".acbuild").exists()  # the build context was never touched
    assert sorted(p.name for p in acb.work.iterdir()) == ["app.aci"]  # no temporary left
    for refused in (["begin"], ["write", "out.aci"], ["end"], ["version"]):
        assert acb.fails("--modify", str(aci), *refused) == \
            f"Can't use the --modify flag with {refused[0]}.\n"
    assert acb.fails("--modify", str(tmp_path / "nope.aci"), "set-user", "1") == \
        f"ACI doesn't appear to exist: {tmp_path / 'nope.aci'}.\n"
