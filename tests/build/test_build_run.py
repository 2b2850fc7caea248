"""`acbuild run -- CMD`: a build step run inside the image being built, through the launcher."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from build_helpers import Acbuild, open_aci
from components import missing

from registry.build.builder import STANDARD_PATH

# A build step as small as possible and with no libraries: it records what it saw (its
# environment, working directory and identity) in a file, says so, and exits with the
# status it is given. Static, so the image needs nothing else in its rootfs.
STEP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 3) return 100;
    const char *greeting = getenv("GREETING"), *path = getenv("PATH");
    char cwd[4096];
    FILE *out = fopen(argv[1], "w");
    if (!out) { perror(argv[1]); return 101; }
    fprintf(out, "greeting=%s\npath=%s\ncwd=%s\nids=%d:%d\n",
            greeting ? greeting : "(unset)", path ? path : "(unset)",
            getcwd(cwd, sizeof cwd) ? cwd : "?", (int)getuid(), (int)getgid());
    fclose(out);
    printf("step wrote %s\n", argv[1]);
    return atoi(argv[2]);
}
"""


def _needs_root() -> None:
    if os.geteuid() != 0:
        missing("acbuild run needs root (the launcher's namespaces)")


@pytest.fixture(scope="session")
def step_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("step")
    source = directory / "step.c"
    source.write_text(STEP_C)
    target = directory / "step"
    subprocess.run(["cc", "-static", "-Os", "-o", str(target), str(source)], check=True,
                   capture_output=True)
    return target


@pytest.fixture
def build_with_step(acb: Acbuild, step_binary: Path) -> Acbuild:
    """A build in progress whose rootfs holds only /bin/step and an empty /tmp."""
    acb("begin")
    acb("set-name", "example.com/built-by-run")
    acb("copy", str(step_binary), "/bin/step")
    (acb.rootfs / "tmp").mkdir()
    return acb


def _seen(path: Path) -> dict[str, str]:
    """What the step recorded: greeting, path, cwd and ids (uid:gid)."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _history(manifest: dict) -> list[str]:
    return [a["value"] for a in manifest.get("annotations", [])
            if a["name"].startswith("appc.io/acbuild/command-")]


@pytest.mark.root
def test_run_changes_persist_in_rootfs_and_written_aci(build_with_step: Acbuild, tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str],
                                                         actool_validate) -> None:
    _needs_root()
    acb = build_with_step
    acb("environment", "add", "GREETING", "hello from the manifest")
    acb("set-user", "1234")  # the app's user: a build step still runs as root, as in acbuild
    acb("set-working-directory", "/tmp")  # the app's directory: a build step runs in /
    result = acb("run", "--", "/bin/step", "made-by-run", "0")
    assert result.exit_code == 0
    assert "step wrote made-by-run" in capfd.readouterr().out  # the command's own stdout

    made = acb.rootfs / "made-by-run"  # relative to / (acbuild's default directory)
    assert _seen(made) == {"greeting": "hello from the manifest", "path": STANDARD_PATH,
                           "cwd": "/", "ids": "0:0"}
    assert _history(acb.manifest())[-1] == 'acbuild run "/bin/step" "made-by-run" "0"'

    out = tmp_path / "built.aci"
    acb("write", str(out))
    written = open_aci(out)
    assert written.contents["rootfs/made-by-run"] == made.read_bytes()
    assert written.members["rootfs/made-by-run"].isreg()
    actool_validate(out)


@pytest.mark.root
def test_exit_status_propagates_and_a_failed_step_is_not_recorded(
        build_with_step: Acbuild, acbuild_script: str) -> None:
    _needs_root()
    acb = build_with_step
    before = acb.state()
    assert acb("run", "--", "/bin/step", "/failed-step", "7", ok=False).exit_code == 7
    # No history for a failed step (acbuild's rule), but what it did to the rootfs stays:
    # there is no snapshot to roll back to, in acbuild either.
    assert acb.state() == before
    assert (acb.rootfs / "failed-step").exists()

    # Through the installed console script, as a shell script would call it.
    result = subprocess.run([acbuild_script, "run", "--", "/bin/step", "/again", "42"],
                            cwd=acb.work, capture_output=True, text=True, timeout=60)
    assert result.returncode == 42, result.stderr
    assert result.stdout == "step wrote /again\n"

    missing = subprocess.run([acbuild_script, "run", "--", "/bin/no-such-program"],
                             cwd=acb.work, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 127
    assert "cannot execute /bin/no-such-program" in missing.stderr


@pytest.mark.root
def test_environment_path_and_working_dir(build_with_step: Acbuild) -> None:
    _needs_root()
    acb = build_with_step
    acb("environment", "add", "GREETING", "first")
    acb("environment", "add", "GREETING", "second")  # the updated value is the one seen
    acb("environment", "add", "PATH", "/opt/bin:/bin")  # the image's own PATH wins
    acb("run", "--working-dir", "/tmp", "--", "step", "here", "0")  # found through that PATH
    assert _seen(acb.rootfs / "tmp" / "here") == {"greeting": "second", "path": "/opt/bin:/bin",
                                                  "cwd": "/tmp", "ids": "0:0"}

    acb("environment", "remove", "GREETING")
    acb("run", "--", "/bin/step", "/there", "0")
    assert _seen(acb.rootfs / "there")["greeting"] == "(unset)"


@pytest.mark.root
def test_run_refusals(acb: Acbuild) -> None:
    _needs_root()
    assert "no build in progress" in acb.fails("run", "--", "/bin/true")
    acb("begin")
    error = acb.fails("run", "--working-dir", "/does-not-exist", "--", "/bin/true")
    assert error.startswith("run: cannot run /bin/true") and "does-not-exist" in error
    acb("dependency", "add", "example.com/base")
    assert "with dependencies is not supported" in acb.fails("run", "--", "/bin/true")
    no_command = acb("run", ok=False)  # acbuild v0.4.0: the command's help, exit 1
    assert no_command.exit_code == 1 and "Usage: acbuild run" in no_command.stdout


def test_run_needs_root(acb: Acbuild, monkeypatch: pytest.MonkeyPatch) -> None:
    acb("begin")
    before = acb.state()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert acb.fails("run", "--", "/bin/true") == "run: the run subcommand must be run as root\n"
    assert acb.state() == before


def test_run_is_listed_with_acbuilds_options(acb: Acbuild) -> None:
    help_text = acb("run", "--help").stdout
    for option in ("--working-dir", "--insecure", "--engine"):
        assert option in help_text
    assert "run" in acb("--help").stdout
