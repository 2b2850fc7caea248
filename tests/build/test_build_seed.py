"""The seed's acbuild script runs unchanged through the installed `acbuild` and its image is
what rkt users expect: valid for appc's actool, /app/hello executable, the seed's settings."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from build_helpers import open_aci

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_SCRIPT = REPO_ROOT / "tests" / "data" / "seed-acbuild.sh"
SEED_MARKER = "Rkt images are build with the"
OUTPUT = "hello-latest-linux-amd64.aci"


def _seed_block(seed_file: Path) -> str:
    """The ``` block right after the seed's line about acbuild."""
    after = seed_file.read_text().split(SEED_MARKER, 1)[1]
    return after.split("```\n", 1)[1].split("```", 1)[0]


def _seed_files() -> list[Path]:
    for shared in (REPO_ROOT.parent / "shared", Path("/work/shared")):
        found = sorted((shared / "seeds").glob("000_*.txt"))
        if found:
            return found
    return []


def test_script_is_the_seeds_block_verbatim() -> None:
    seeds = _seed_files()
    if not seeds:
        pytest.skip("the shared seeds folder is not beside this checkout")
    assert SEED_SCRIPT.read_text() == _seed_block(seeds[0])


def test_script_has_the_six_commands() -> None:
    commands = SEED_SCRIPT.read_text().splitlines()
    assert [line.split()[:2] for line in commands] == [
        ["acbuild", "begin"], ["acbuild", "set-name"], ["acbuild", "copy"],
        ["acbuild", "set-working-directory"], ["acbuild", "set-exec"], ["acbuild", "write"],
    ]


def _run_seed(work: Path, acbuild_script: str) -> subprocess.CompletedProcess[str]:
    script = work / "seed-acbuild.sh"
    shutil.copyfile(SEED_SCRIPT, script)
    env = dict(os.environ, PATH=f"{Path(acbuild_script).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def seed_work(tmp_path: Path, static_hello: Path) -> Path:
    work = tmp_path / "seed"
    work.mkdir()
    shutil.copy2(static_hello, work / "hello")
    return work


def _check_hello_image(aci_path: Path, static_hello: Path, actool_validate) -> None:
    actool_validate(aci_path)
    image = open_aci(aci_path)
    assert image.manifest["name"] == "hello"
    assert image.manifest["app"]["exec"] == ["/app/hello"]
    assert image.manifest["app"]["workingDirectory"] == "/app"
    assert image.manifest["app"]["user"] == "0" and image.manifest["app"]["group"] == "0"
    assert image.labels()["os"] == "linux" and image.labels()["arch"] == "amd64"
    hello = image.members["rootfs/app/hello"]
    assert hello.isreg() and hello.mode & stat.S_IXUSR
    assert image.contents["rootfs/app/hello"] == static_hello.read_bytes()
    assert image.members["rootfs/app"].isdir()


def test_seed_script_builds_hello_image(seed_work: Path, acbuild_script: str, static_hello: Path,
                                        actool_validate) -> None:
    result = _run_seed(seed_work, acbuild_script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a clean first run: no errors, no warnings
    aci_path = seed_work / OUTPUT
    _check_hello_image(aci_path, static_hello, actool_validate)
    # write prints nothing on success, as acbuild v0.4.0 (the image ID is the file's SHA-512)
    assert result.stdout == ""


def test_seed_image_runs_its_program(seed_work: Path, acbuild_script: str, tmp_path: Path) -> None:
    """The packed program is the real one: unpacked from the ACI it still runs."""
    assert _run_seed(seed_work, acbuild_script).returncode == 0
    image = open_aci(seed_work / OUTPUT)
    unpacked = tmp_path / "hello-from-aci"
    unpacked.write_bytes(image.contents["rootfs/app/hello"])
    unpacked.chmod(image.members["rootfs/app/hello"].mode)
    ran = subprocess.run([str(unpacked), "x"], capture_output=True, text=True, timeout=30)
    assert ran.stdout.splitlines()[0] == "Hello from pyrkt" and "arg=x" in ran.stdout


def test_seed_script_runs_twice_in_a_row(seed_work: Path, acbuild_script: str,
                                         static_hello: Path, actool_validate) -> None:
    """The script never ends its build, so the build context stays; as with acbuild, the second
    run's `begin` reports the build in progress, the later commands edit that build again and
    `write --overwrite` replaces the image, so the script still succeeds."""
    assert _run_seed(seed_work, acbuild_script).returncode == 0
    assert (seed_work / ".acbuild" / "currentaci" / "manifest").is_file()
    (seed_work / OUTPUT).write_bytes(b"stale")

    second = _run_seed(seed_work, acbuild_script)

    assert second.returncode == 0, second.stderr
    assert "begin: build already in progress in this working dir" in second.stderr
    _check_hello_image(seed_work / OUTPUT, static_hello, actool_validate)


def test_seed_script_through_pyrkt_build(seed_work: Path, acbuild_script: str,
                                         actool_validate) -> None:
    """`pyrkt build` is the same builder: the script with `acbuild` replaced works too."""
    script = SEED_SCRIPT.read_text().replace("acbuild ", "pyrkt build ")
    (seed_work / "pyrkt-seed.sh").write_text(script)
    env = dict(os.environ, PATH=f"{Path(acbuild_script).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "pyrkt-seed.sh"], cwd=seed_work, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    actool_validate(seed_work / OUTPUT)
    assert open_aci(seed_work / OUTPUT).manifest["app"]["exec"] == ["/app/hello"]
