"""The launcher's commands end like the client's: `pyrkt: <message>`, exit 254, no traceback.

The pod's own exit code still passes through `run` (tests/launcher/test_launcher_run.py).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner
from launcher_helpers import needs_root, wait_for_file

from registry.cli.options import EXIT_FAILURE, client_options

LAUNCHER_COMMANDS = ["run", "prepare", "run-prepared", "list", "status", "stop", "rm", "gc",
                     "logs", "enter", "cat-manifest"]
STORE_DEFAULT = "[default: $PYRKT_DIR, /var/lib/pyrkt for root, else ~/.local/share/pyrkt]"


def _one_line_error(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert result.returncode == EXIT_FAILURE, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(start) and result.stderr.count("\n") == 1, result.stderr


def test_unusable_store_is_one_line_not_a_traceback(pyrkt) -> None:
    result = pyrkt("run", "--dir", "/proc/nope", "b/hello.aci")
    _one_line_error(result, "pyrkt: cannot use the image store at /proc/nope")
    prepared = pyrkt("prepare", "--dir", "/proc/nope", "b/hello.aci")
    _one_line_error(prepared, "pyrkt: cannot use the image store at /proc/nope")


def test_debug_adds_the_traceback(pyrkt) -> None:
    result = pyrkt("run", "--debug", "--dir", "/proc/nope", "b/hello.aci")
    assert result.returncode == EXIT_FAILURE
    assert "Traceback" in result.stderr and "StoreError" in result.stderr
    assert result.stderr.rstrip().endswith("pyrkt: cannot use the image store at /proc/nope: "
                                           "No such file or directory")


@pytest.mark.parametrize("args", [
    ["status", "0123abcd"], ["logs", "0123abcd"], ["cat-manifest", "0123abcd"],
    ["enter", "0123abcd"], ["run-prepared", "0123abcd"], ["stop", "0123abcd"],
    ["rm", "0123abcd"],
], ids=lambda args: args[0])
def test_unknown_pod(pyrkt, store, args: list[str]) -> None:
    result = pyrkt(*args)
    _one_line_error(result, f"pyrkt: no pod with UUID 0123abcd in {store}")


def test_stop_and_rm_report_each_failure_and_go_on(pyrkt, store) -> None:
    for command in ("stop", "rm"):
        result = pyrkt(command, "0123abcd", "4567ef01")
        assert result.returncode == EXIT_FAILURE
        assert result.stderr.splitlines() == [f"pyrkt: no pod with UUID {uuid} in {store}/pods"
                                              for uuid in ("0123abcd", "4567ef01")]


@pytest.mark.parametrize("flag, value, examples, other", [
    ("--cpu", "abc", "examples: 500m, 1, 2.5", "512M"),
    ("--memory", "lots", "examples: 512M, 1Gi", "500m"),
])
def test_quantity_errors_give_examples_of_their_own_kind(pyrkt, flag, value, examples,
                                                         other) -> None:
    for args in ([f"{flag}={value}", "b/hello.aci"], ["b/hello.aci", f"{flag}={value}"]):
        result = pyrkt("run", *args)
        _one_line_error(result, f'pyrkt: {flag}: "{value}"')
        assert examples in result.stderr and other not in result.stderr


@pytest.mark.parametrize("command", LAUNCHER_COMMANDS)
def test_help_shows_the_store_default_and_debug(pyrkt, command: str) -> None:
    result = pyrkt(command, "--help", check=True)
    text = " ".join(result.stdout.split())  # click wraps the help text
    assert "--dir DIRECTORY" in text and STORE_DEFAULT in text
    assert "--debug" in text and "--local-config" in text and "--user-config" in text


def test_run_help_has_examples(pyrkt) -> None:
    text = pyrkt("run", "--help", check=True).stdout
    assert "Examples:" in text
    assert "pyrkt run --insecure-options=image ./hello.aci" in text
    assert "domains.d" in text


def _command(error: BaseException) -> click.Command:
    from registry.cli.launcher_errors import launcher_errors

    @click.command()
    @client_options
    @launcher_errors
    def failing(client) -> None:
        raise error

    return failing


def _manifest_error() -> BaseException:
    from registry.aci import ManifestError

    return ManifestError('labels: bad arch "x86_64" for os "linux"')


@pytest.mark.parametrize("make_error, message", [
    (lambda: PermissionError(errno.EACCES, "Permission denied", "/var/lib/pyrkt/pods"),
     "pyrkt: Permission denied: /var/lib/pyrkt/pods\n"),
    (_manifest_error, 'pyrkt: labels: bad arch "x86_64" for os "linux"\n'),
], ids=["host", "format-core"])
def test_format_core_and_host_errors_are_reported_like_client_errors(make_error,
                                                                     message) -> None:
    result = CliRunner().invoke(_command(make_error()), [])
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr == message


def test_output_into_a_closed_pipe_ends_quietly(tmp_path, tool_image, pyrkt, store) -> None:
    """`pyrkt logs UUID | head -1`: once the reader is gone, no BrokenPipeError traceback."""
    needs_root()
    uuid_file = tmp_path / "uuid"
    pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(tool_image()),
          "--", "hostname", check=True)
    uuid = wait_for_file(uuid_file)
    for args in (["logs", uuid], ["list"], ["cat-manifest", uuid], ["status", uuid]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write
        try:
            result = subprocess.run([sys.executable, "-m", "registry.cli.entry", *args],
                                    stdout=write_end, stderr=subprocess.PIPE, text=True,
                                    env=dict(os.environ, PYRKT_DIR=str(store)), timeout=60)
        finally:
            os.close(write_end)
        assert result.stderr == "", args
        assert result.returncode == 141, args  # as a program killed by SIGPIPE


def test_enter_without_a_command_needs_a_shell_in_the_image(tmp_path, tool_image, tool_binary,
                                                            start_pyrkt, pyrkt) -> None:
    needs_root()
    uuids = {}
    for name, files in (("example.com/bare", {}), ("example.com/shell", {"/bin/sh": tool_binary})):
        uuid_file = tmp_path / f"uuid-{name.rsplit('/', 1)[-1]}"
        start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                    str(tool_image(name=name, files=files)), "--", "hostname", "sleep", "60")
        uuids[name] = wait_for_file(uuid_file)
    for uuid in uuids.values():
        deadline = time.monotonic() + 20
        while "hostname=" not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
            time.sleep(0.1)

    short = uuids["example.com/bare"][:8]
    refused = pyrkt("enter", short)
    _one_line_error(refused, "pyrkt: app bare has no /bin/sh to start; give the command to run, "
                             f"e.g. pyrkt enter {short} /bin/tool")
    assert pyrkt("enter", short, "/bin/tool", "hostname", check=True).stdout.startswith(
        "hostname=rkt-")
    # an image with /bin/sh gets it (here the test tool, which prints nothing without arguments)
    entered = pyrkt("enter", uuids["example.com/shell"])
    assert entered.returncode == 0 and entered.stdout == "", entered.stderr
    for uuid in uuids.values():
        pyrkt("stop", uuid, check=True)
