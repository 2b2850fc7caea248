"""Two builders in one working directory: the second fails at once with a clear message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

LOCK_MESSAGE = "lock already held - is another acbuild running in this working dir?"

# A second process that holds the build's lock until told to let go (a line on stdin).
HOLDER = """
import sys
from registry.build import BuildContext
with BuildContext.at(sys.argv[1]).locked():
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def lock_held_by_another_process(work: Path) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(work)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.communicate("release\n", timeout=30)
    assert holder.returncode == 0


def _acbuild(acbuild_script: str, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([acbuild_script, *args], cwd=work, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def begun(tmp_path: Path, acbuild_script: str) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    assert _acbuild(acbuild_script, work, "begin").returncode == 0
    return work


def _manifest(work: Path) -> bytes:
    return (work / ".acbuild" / "currentaci" / "manifest").read_bytes()


@pytest.mark.parametrize("command", [
    ["set-name", "contender"], ["label", "add", "version", "2"], ["cat-manifest"], ["end"],
    ["write", "--overwrite", "out.aci"],
])
def test_second_builder_fails_clearly_and_changes_nothing(begun: Path, acbuild_script: str,
                                                          command: list[str]) -> None:
    before = _manifest(begun)
    with lock_held_by_another_process(begun):
        result = _acbuild(acbuild_script, begun, *command)
    assert result.returncode == 1
    assert LOCK_MESSAGE in result.stderr
    assert _manifest(begun) == before
    assert not (begun / "out.aci").exists()


def test_lock_is_released_when_the_other_builder_finishes(begun: Path, acbuild_script: str) -> None:
    with lock_held_by_another_process(begun):
        assert _acbuild(acbuild_script, begun, "set-name", "late").returncode == 1
    after = _acbuild(acbuild_script, begun, "set-name", "late")
    assert after.returncode == 0, after.stderr
    assert b'"late"' in _manifest(begun)


def test_two_concurrent_begins_one_wins(tmp_path: Path, acbuild_script: str) -> None:
    work = tmp_path / "race"
    work.mkdir()
    racers = [subprocess.Popen([acbuild_script, "begin"], cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((racer.wait(timeout=60), racer.stderr.read()) for racer in racers)
    for racer in racers:
        racer.stdout.close()
        racer.stderr.close()
    assert outcomes[0][0] == 0
    assert outcomes[1][0] == 1
    assert "build already in progress" in outcomes[1][1] or LOCK_MESSAGE in outcomes[1][1]
    assert (work / ".acbuild" / "currentaci" / "manifest").is_file()
