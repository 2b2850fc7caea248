"""`run_in_rootfs`, the helper behind `acbuild run`: a command with a build's rootfs as `/`."""

from __future__ import annotations

import shutil

import pytest
from launcher_helpers import needs_root

from registry.launcher.errors import LauncherError
from registry.launcher.oneshot import run_in_rootfs

pytestmark = [pytest.mark.root]


def test_command_runs_in_the_rootfs_and_changes_persist(tmp_path, tool_binary, capfd) -> None:
    needs_root()
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(tool_binary, rootfs / "bin" / "tool")
    code = run_in_rootfs(rootfs, ["/bin/tool", "write", "/made-in-build", "yes", "exists",
                                  str(tmp_path), "hostname", "exit", "3"])
    assert code == 3
    out = capfd.readouterr().out
    assert "write /made-in-build: ok" in out and f"exists {tmp_path}: no" in out
    assert "hostname=acbuild" in out
    assert (rootfs / "made-in-build").read_text() == "yes"
    assert run_in_rootfs(rootfs, ["/bin/missing"]) == 127
    with pytest.raises(LauncherError, match="not a directory"):
        run_in_rootfs(tmp_path / "nope", ["/bin/tool"])
