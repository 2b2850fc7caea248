"""The launcher's commands end like the client's: `pyrkt: <message>`, exit 254, no traceback.

The pod's own exit code still passes through `run` (tests/launcher/test_launcher_run.py).
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from launcher_helpers import needs_root, wait_for_file

from registry.cli.options import EXIT_FAILURE, client_options
from registry.cli.run import launcher_errors

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


def test_logs_into_a_closed_pipe_end_quietly(tmp_path, tool_image, pyrkt, store) -> None:
    needs_root()
    uuid_file = tmp_path / "uuid"
    pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(tool_image()),
          "--", "hostname", check=True)
    uuid = wait_for_file(uuid_file)
    log = next(Path(store, "pods").glob(f"*/{uuid}/apps/tool/log"))
    with log.open("a") as handle:
        handle.write("more\n" * 200_000)  # far beyond a pipe's buffer
    command = shlex.join([sys.executable, "-m", "registry.cli.main", "logs", uuid])
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                            env=dict(os.environ, PYRKT_DIR=str(store)), capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.startswith("hostname=rkt-")
    assert result.stderr == ""
    assert result.returncode == 141  # as a program killed by SIGPIPE
