"""The lean entry (`registry.cli.entry`, the `pyrkt` console script) reads `pyrkt run` without
click. Whatever command line it takes, click's command would have read the same way: the
same client context, the same flags, after the same hoisting; whatever it does not take
exactly so (help, short options, unknown flags, bad values, misplaced global flags), it hands
to click unread, so help and usage errors stay click's.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from launcher_helpers import needs_root

import registry.cli.pod_flags as pod_flags
import registry.cli.run as click_run
import registry.cli.views as views
from registry.cli import entry
from registry.cli.flags import Defer
from registry.cli.main import pyrkt


def _read_by_click(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict]:
    seen: list[tuple[Any, dict]] = []
    monkeypatch.setattr(click_run, "run_command",
                        lambda client, flags: seen.append((client, dict(flags))) or 0)
    result = CliRunner().invoke(pyrkt, argv)
    assert result.exit_code == 0 and seen, (result.output, result.exception)
    return seen[0]


def _read_lean(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict]:
    seen: list[tuple[Any, dict]] = []
    reaps: list[bool] = []

    def run_command(client: Any, flags: dict, *, reap: bool = True) -> int:
        seen.append((client, dict(flags)))
        reaps.append(reap)
        return 0

    monkeypatch.setattr(pod_flags, "run_command", run_command)
    assert entry._lean(argv)() == 0
    # the lean entry exits once the command returns: it leaves the stage1's last processes
    # (click's command, also run in-process by tests, waits for them: its stub takes no `reap`)
    assert reaps == [False]
    return seen[0]


def _command_lines(tmp: Path) -> list[list[str]]:
    bundle = tmp / "ca.pem"
    bundle.write_text("not checked here\n")
    return [
        ["run", "--net=host", "sha512-0123abcd"],
        ["--debug", "run", "example.com/app:1"],
        ["--dir", str(tmp / "store"), "run", "--insecure-options=image,seccomp", "--port",
         "http:8080", "--set-env=A=1", "--set-env", "B=2", "example.com/app", "--exec=/bin/x",
         "--", "a", "-b", "--net=none"],
        ["run", "--pull-policy=never", "--stage1", "builtin", "--net=default",
         "--net=mynet:IP=10.1.0.9", "example.com/a", "--insecure-options=image",
         "--volume=v,kind=empty", "--name=one", "---", "example.com/b", "--memory=64M"],
        ["run", "--inherit-env", "--interactive", "--no-overlay", "--uuid-file-save",
         str(tmp / "uuid"), "./x.aci"],
        ["run", f"--ca-bundle={bundle}", "--trust-keys-from-https", "example.com/app"],
        ["--insecure-options=image", "run", "--insecure-options=tls", "example.com/app"],
        ["--insecure-options=image", "--trust-keys-from-https", "run", "example.com/app"],
        ["run", "example.com/app", "--debug", "--trust-keys-from-https", "--set-env", "C=3",
         "--dns=10.0.0.1", "--dns", "host"],
        ["run", "--dns=host", "--hosts-entry=1.2.3.4=db", "--hostname=x", "--cpu=1",
         "--memory=64M", "--caps-retain=CAP_CHOWN", "--seccomp=mode=remove,socket", "img"],
        ["--user-config", str(tmp), "--local-config", str(tmp), "--system-config",
         str(tmp / "absent"), "run", "--user=1", "--group=2", "--working-dir=/w", "img"],
        ["run", "--net", "host", "--net", "none", "img", "--readonly-rootfs", "---", "img2"],
        ["run", "--stage1=auto", "--pull-policy", "update", "-"],
    ]


def test_every_command_line_the_lean_entry_takes_reads_as_clicks_command_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYRKT_DIR", raising=False)
    for argv in _command_lines(tmp_path):
        by_click = _read_by_click(argv, monkeypatch)
        lean = _read_lean(argv, monkeypatch)
        assert lean == by_click, argv


@pytest.mark.parametrize("argv", [
    ["run", "--help"], ["run", "-h"], ["--help"], ["--version"], ["-h", "run", "x"],
    ["run", "--pull-policy=sometimes", "img"], ["run", "--stage1", "nspawn", "img"],
    ["run", "--ca-bundle=/nonexistent/ca.pem", "img"], ["run", "--bogus", "img"],
    ["run", "--debug=yes", "img"], ["run", "--net"], ["run", "img", "--dir=/x"],
    ["run", "img", "--port"], ["run", "--", "img"], ["--insecure-options=bogus", "run", "img"],
    ["run", "--insecure-options", "nope", "img"], ["run", "img", "--pull-policy=sometimes"],
    ["--dir=", "run", "img"], ["run", "--uuid-file-save", "/", "img"], [], ["version"],
    ["fetch", "x"], ["prepare", "img"], ["--bogus", "run", "img"], ["run", "-qx", "img"],
])
def test_what_the_lean_entry_does_not_take_exactly_goes_to_click(argv: list[str]) -> None:
    with pytest.raises(Defer):
        entry._lean(argv)


def test_a_file_given_as_the_store_goes_to_click_which_says_why(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(Defer):
        entry._lean(["--dir", str(not_a_dir), "run", "img"])
    result = subprocess.run([sys.executable, "-m", "registry.cli.main", "--dir", str(not_a_dir),
                             "run", "img"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "is a file" in result.stderr, result.stderr


def test_shell_completion_is_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(entry.COMPLETION_VARIABLE, "bash_complete")
    with pytest.raises(Defer):
        entry._lean(["run", "img"])


def test_console_script_runs_a_stored_image_without_click_or_the_http_stack(
        tool_image, pyrkt, store: Path) -> None:
    needs_root()
    fetched = pyrkt("fetch", "--insecure-options=image", str(tool_image()), check=True)
    image_id = fetched.stdout.split()[-1]
    env = dict(os.environ, PYRKT_DIR=str(store))
    result = subprocess.run([sys.executable, "-X", "importtime", "-c",
                             "import sys; sys.argv = ['pyrkt', 'run', '--net=host', "
                             f"{image_id!r}, '--', 'exists', '/bin/tool']\n"
                             "from registry.cli.entry import main\nmain()"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "exists /bin/tool: yes" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "registry.launcher.stage1_builtin" in imported  # the probe sees the run's imports
    assert not {"click", "requests", "urllib3", "ssl"} & imported, sorted(imported)

    # and what the lean entry hands on still ends as click's: usage errors, exit status 2
    bad = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['pyrkt', 'run', "
                          "'--pull-policy=sometimes', 'x']\nfrom registry.cli.entry import "
                          "main\nmain()"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "Invalid value for '--pull-policy'" in bad.stderr, bad.stderr


VIEWS = {"list": "list_command", "status": "status_command", "image": "image_list_command"}
SIGNATURES = {name: inspect.signature(getattr(views, name)) for name in VIEWS.values()}


def _view_read(argv: list[str], monkeypatch: pytest.MonkeyPatch, lean: bool) -> dict:
    """The arguments the view's body gets (by name), through either reader."""
    name = VIEWS[next(a for a in argv if a in VIEWS)]
    signature = SIGNATURES[name]
    seen: list[dict] = []
    monkeypatch.setattr(views, name, lambda *args, **kwargs: seen.append(
        dict(signature.bind(*args, **kwargs).arguments)))
    if lean:
        assert entry._lean(argv)() == 0
    else:
        result = CliRunner().invoke(pyrkt, argv)
        assert result.exit_code == 0, (result.output, result.exception)
    assert len(seen) == 1
    return seen[0]


def test_the_listings_read_as_clicks_commands_read_them(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYRKT_DIR", raising=False)
    for argv in (["list"], ["list", "--full", "--no-legend", "--fields=uuid,state", "--format",
                            "json"],
                 ["--debug", "list", "--dir", str(tmp_path)],
                 ["list", "--format=json-pretty", "--insecure-options=image"],
                 ["status", "abc"], ["status", "--wait", "--wait-timeout", "2.5", "abc",
                                     "--format=json"],
                 ["status", "abc", "--dir", str(tmp_path)],
                 ["image", "list"], ["image", "list", "--fields=id,labels", "--sort", "name",
                                     "--order=desc", "--full", "--no-legend", "--format", "json"],
                 ["--dir", str(tmp_path), "image", "list", "--sort=size"]):
        assert _view_read(argv, monkeypatch, lean=True) == \
            _view_read(argv, monkeypatch, lean=False), argv


@pytest.mark.parametrize("argv", [
    ["list", "extra"], ["status"], ["status", "a", "b"], ["list", "--fields=bogus"],
    ["list", "--fields", ","], ["image", "list", "--sort=bogus"], ["image", "--help"],
    ["image", "rm", "x"], ["image"], ["status", "--wait-timeout=x", "a"], ["list", "-h"],
    ["image", "list", "x"], ["list", "--format=yaml"], ["status", "--wait=1", "a"],
])
def test_listings_the_lean_entry_does_not_take_exactly_go_to_click(argv: list[str]) -> None:
    with pytest.raises(Defer):
        entry._lean(argv)


def test_a_reader_gone_ends_image_list_as_clicks_group_ends_it(tmp_path: Path) -> None:
    """`pyrkt image list | head -0`: exit status 1 and nothing on stderr, through either reader
    (the launcher's own commands end as SIGPIPE would: tests/launcher/test_launcher_cli.py)."""
    env = dict(os.environ, PYRKT_DIR=str(tmp_path / "store"))
    codes = []
    for module in ("registry.cli.entry", "registry.cli.main"):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = subprocess.run([sys.executable, "-m", module, "image", "list"],
                                    stdout=write_end, stderr=subprocess.PIPE, text=True,
                                    env=env, timeout=60)
        finally:
            os.close(write_end)
        assert result.stderr == "", (module, result.stderr)
        codes.append(result.returncode)
    assert codes == [1, 1]
