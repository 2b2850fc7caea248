"""The manifest commands: what each one changes, and that a bad value changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from build_helpers import Acbuild

HISTORY = "appc.io/acbuild/command-"


@pytest.fixture
def started(acb: Acbuild) -> Acbuild:
    acb("--no-history", "begin")
    return acb


def _app(acb: Acbuild) -> dict:
    return acb.manifest()["app"]


def _annotations(acb: Acbuild, *, history: bool = False) -> dict[str, str]:
    return {a["name"]: a["value"] for a in acb.manifest().get("annotations", [])
            if history or not a["name"].startswith(HISTORY)}


def test_set_name(started: Acbuild) -> None:
    started("set-name", "example.com/app")
    assert started.manifest()["name"] == "example.com/app"


@pytest.mark.parametrize("bad", ["Example.com/App", "has space", "trailing-", "double..dot", ""])
def test_set_name_rejects_bad_names_and_keeps_state(started: Acbuild, bad: str) -> None:
    before = started.state()
    error = started.fails("set-name", bad)
    assert error.startswith("set-name: ") and "name" in error
    assert started.state() == before


def test_set_exec_takes_everything_after_double_dash(started: Acbuild) -> None:
    started("set-exec", "--", "/bin/sh", "-c", "echo hi --flag")
    assert _app(started)["exec"] == ["/bin/sh", "-c", "echo hi --flag"]
    started("set-exec", "--", "/usr/bin/env")
    assert _app(started)["exec"] == ["/usr/bin/env"]


def test_set_exec_needs_a_command(started: Acbuild) -> None:
    before = started.state()
    started.fails("set-exec", code=1)  # acbuild v0.4.0: its help, exit 1
    assert started.state() == before


def test_set_working_directory_user_group(started: Acbuild) -> None:
    started("set-working-directory", "/srv")
    started("set-user", "www-data")
    started("set-group", "1000")
    app = _app(started)
    assert (app["workingDirectory"], app["user"], app["group"]) == ("/srv", "www-data", "1000")
    started("set-wd", "/opt")  # acbuild's alias
    assert _app(started)["workingDirectory"] == "/opt"


def test_relative_working_directory_is_rejected(started: Acbuild) -> None:
    before = started.state()
    error = started.fails("set-working-directory", "relative/dir")
    assert error.startswith("set-working-directory: ") and "workingDirectory" in error
    assert started.state() == before


@pytest.mark.parametrize("command", ["set-user", "set-group"])
def test_empty_user_or_group_is_rejected(started: Acbuild, command: str) -> None:
    before = started.state()
    error = started.fails(command, "")
    assert "cannot be empty" in error
    assert started.state() == before


def test_environment_add_update_remove(started: Acbuild) -> None:
    started("environment", "add", "GREETING", "hello")
    started("environment", "add", "LEVEL", "1")
    started("environment", "add", "GREETING", "bye")  # updates in place
    assert _app(started)["environment"] == [{"name": "GREETING", "value": "bye"},
                                            {"name": "LEVEL", "value": "1"}]
    started("environment", "rm", "GREETING")
    started("environment", "remove", "LEVEL")
    assert not _app(started).get("environment")


def test_environment_rejects_bad_names(started: Acbuild) -> None:
    before = started.state()
    error = started.fails("environment", "add", "1BAD", "x")
    assert error.startswith("environment add: ") and "environment" in error
    assert started.state() == before


def test_label_add_replace_remove(started: Acbuild) -> None:
    started("label", "add", "version", "1.0")
    started("label", "add", "version", "2.0")
    labels = [label for label in started.manifest()["labels"] if label["name"] == "version"]
    assert labels == [{"name": "version", "value": "2.0"}]
    started("label", "rm", "version")
    assert "version" not in {label["name"] for label in started.manifest()["labels"]}


@pytest.mark.parametrize("args, needle", [
    (["arch", "x86_64"], "arch"),      # not an appc arch for linux
    (["os", "plan9"], "os"),           # not a known os
    (["Bad_Name", "x"], "labels"),     # not an AC Identifier
    (["name", "x"], "name"),           # reserved
])
def test_label_rejects_bad_values_and_keeps_state(started: Acbuild, args: list[str],
                                                  needle: str) -> None:
    before = started.state()
    error = started.fails("label", "add", *args)
    assert error.startswith("label add: ") and needle in error
    assert started.state() == before


def test_remove_of_missing_element_exits_2(started: Acbuild) -> None:
    before = started.state()
    for command in (["label", "rm", "nope"], ["environment", "rm", "NOPE"],
                    ["annotation", "rm", "nope"], ["port", "rm", "nope"],
                    ["mount", "rm", "nope"], ["isolator", "rm", "resource/cpu"],
                    ["dependency", "rm", "nope"]):
        error = started.fails(*command, code=2)
        assert "element to be removed does not exist in this ACI" in error
    assert started.state() == before


def test_annotation_add_update_remove(started: Acbuild) -> None:
    started("annotation", "add", "documentation", "https://example.com/docs")
    started("annotation", "add", "documentation", "https://example.com/v2")
    assert _annotations(started) == {"documentation": "https://example.com/v2"}
    started("annotation", "rm", "documentation")
    assert _annotations(started) == {}


def test_annotation_rejects_bad_values(started: Acbuild) -> None:
    before = started.state()
    assert "annotations" in started.fails("annotation", "add", "homepage", "ftp://nope")
    assert "annotations" in started.fails("annotation", "add", "Not An Id", "x")
    assert started.state() == before


def test_port_add_with_count_and_socket_activation(started: Acbuild) -> None:
    started("port", "add", "http", "tcp", "80")
    started("port", "add", "range", "udp", "5000", "--count", "3", "--socket-activated")
    assert _app(started)["ports"] == [
        {"name": "http", "protocol": "tcp", "port": 80, "count": 1, "socketActivated": False},
        {"name": "range", "protocol": "udp", "port": 5000, "count": 3, "socketActivated": True},
    ]
    started("port", "add", "http", "tcp", "8080")  # same name: replaced
    assert [p["port"] for p in _app(started)["ports"]] == [5000, 8080]
    started("port", "rm", "5000")  # by number
    started("port", "remove", "http")  # by name
    assert not _app(started).get("ports")


@pytest.mark.parametrize("args, needle", [
    (["http", "tcp", "65536"], "port must be a number between 1 and 65535"),
    (["http", "tcp", "eighty"], "port must be a number between 1 and 65535"),
    (["http", "tcp", "abc"], "port must be a number between 1 and 65535"),
    (["http", "tcp", "0"], "port must be a number between 1 and 65535"),
    (["http", "tcp", "1.5"], "port must be a number between 1 and 65535"),
    (["Bad_Name", "tcp", "80"], "ports"),      # not an AC Name
    (["http", "tcp", "80", "--count", "0"], "count"),
])
def test_port_rejects_bad_values_and_keeps_state(started: Acbuild, args: list[str],
                                                 needle: str) -> None:
    before = started.state()
    error = started.fails("port", "add", *args)
    assert error.startswith("port add: ") and needle in error
    assert started.state() == before


def test_mount_add_and_remove(started: Acbuild) -> None:
    started("mount", "add", "html", "/usr/share/nginx/html", "--read-only")
    started("mount", "add", "data", "/data")
    mounts = _app(started)["mountPoints"]
    assert [(m["name"], m["path"], m.get("readOnly", False)) for m in mounts] == [
        ("html", "/usr/share/nginx/html", True), ("data", "/data", False)]
    started("mount", "add", "store", "/data")  # same path: replaces "data"
    assert [m["name"] for m in _app(started)["mountPoints"]] == ["html", "store"]
    started("mount", "rm", "/usr/share/nginx/html")  # by path
    started("volume", "rm", "store")  # acbuild's alias, by name
    assert not _app(started).get("mountPoints")


def test_mount_rejects_bad_name(started: Acbuild) -> None:
    before = started.state()
    error = started.fails("mount", "add", "not/an/acname", "/x")
    assert error.startswith("mount add: ") and "mountPoints" in error
    assert started.state() == before


def test_isolator_add_from_file_and_stdin(started: Acbuild, tmp_path: Path) -> None:
    value = tmp_path / "cpu.json"
    value.write_text('{"request": "250m", "limit": "500m"}')
    started("isolator", "add", "resource/cpu", str(value))
    started("isolator", "add", "resource/memory", "-", input='{"limit": "512M"}')
    isolators = _app(started)["isolators"]
    assert [i["name"] for i in isolators] == ["resource/cpu", "resource/memory"]
    assert isolators[0]["value"]["limit"] == "500m"
    assert isolators[1]["value"]["limit"] == "512M"
    started("isolator", "rm", "resource/cpu")
    assert [i["name"] for i in _app(started)["isolators"]] == ["resource/memory"]


def test_isolator_rejects_bad_json_bad_values_and_missing_file(started: Acbuild,
                                                              tmp_path: Path) -> None:
    before = started.state()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "not valid JSON" in started.fails("isolator", "add", "resource/cpu", str(broken))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"limit": "lots"}')
    assert "isolators" in started.fails("isolator", "add", "resource/memory", str(wrong))
    started.fails("isolator", "add", "resource/cpu", str(tmp_path / "missing.json"), code=1)
    valid = tmp_path / "valid.json"
    valid.write_text('{"limit": "1"}')
    assert "unknown isolator" in started.fails("isolator", "add", "resource/gpu", str(valid))
    assert started.state() == before


def test_dependency_add_with_options_and_app_string(started: Acbuild) -> None:
    image_id = "sha512-" + "a" * 128
    started("dependency", "add", "example.com/base", "--image-id", image_id,
            "--label", "os=linux", "--size", "22017258")
    started("dependency", "add", "example.com/other:1.0,channel=beta")
    dependencies = started.manifest()["dependencies"]
    assert dependencies[0] == {"imageName": "example.com/base", "imageID": image_id,
                               "labels": [{"name": "os", "value": "linux"}], "size": 22017258}
    assert dependencies[1]["imageName"] == "example.com/other"
    assert {(d["name"], d["value"]) for d in dependencies[1]["labels"]} == {
        ("version", "1.0"), ("channel", "beta")}
    started("dependency", "rm", "example.com/base")
    assert [d["imageName"] for d in started.manifest()["dependencies"]] == ["example.com/other"]


@pytest.mark.parametrize("args, needle", [
    (["Bad Name"], "couldn't parse dependency name"),
    (["example.com/dep", "--image-id", "md5-123"], "imageID"),
    (["example.com/dep", "--label", "novalue"], "no '=' character"),
    (["example.com/dep:1", "--label", "version=2"], "multiple version labels specified"),
])
def test_dependency_rejects_bad_values(started: Acbuild, args: list[str], needle: str) -> None:
    before = started.state()
    error = started.fails("dependency", "add", *args)
    assert error.startswith("dependency add: ") and needle in error
    assert started.state() == before


def test_cat_manifest_pretty_print(started: Acbuild) -> None:
    started("set-name", "pretty")
    compact = started("cat-manifest").stdout
    pretty = started("cat-manifest", "--pretty-print").stdout
    assert compact.count("\n") == 1 and pretty.count("\n") > 5
    assert json.loads(compact) == json.loads(pretty)


def test_history_annotations_record_each_change(acb: Acbuild, tmp_path: Path) -> None:
    acb("begin")
    acb("set-name", "hist")
    (tmp_path / "f").write_text("x")
    acb("copy", str(tmp_path / "f"), "/f")
    acb("label", "add", "version", "1")
    acb("cat-manifest")  # reading changes nothing
    acb.fails("label", "add", "arch", "bogus")  # failures leave no history
    acb("--no-history", "set-user", "1")
    assert _annotations(acb, history=True) == {
        HISTORY + "1": 'acbuild set-name "hist"',
        HISTORY + "2": f'acbuild copy "{tmp_path / "f"}" "/f"',
        HISTORY + "3": 'acbuild label add "version" "1"',
    }


def test_debug_flag_prints_to_stderr(acb: Acbuild) -> None:
    result = acb("--debug", "begin")
    assert "Beginning build with an empty ACI" in result.stderr
    assert acb("cat-manifest").stderr == ""  # without --debug: quiet


def test_pyrkt_build_is_the_same_builder(acb: Acbuild) -> None:
    from click.testing import CliRunner

    from registry.cli.main import pyrkt

    runner = CliRunner()
    assert runner.invoke(pyrkt, ["build", "begin"]).exit_code == 0
    assert runner.invoke(pyrkt, ["build", "set-name", "via-pyrkt"]).exit_code == 0
    assert acb.manifest()["name"] == "via-pyrkt"
    assert "set-exec" in runner.invoke(pyrkt, ["build", "--help"]).stdout


def test_version_option(acb: Acbuild) -> None:
    from registry import __version__

    result = acb("--version")
    assert result.stdout == f"acbuild version {__version__}\n"
    assert not (acb.work / ".acbuild").exists()
