"""What the store's modules cost a start: `pyrkt run` of a stored image and `pyrkt image list`
load the client's store, index, dirs and insecure options, and every standard-library module
they import at load time is paid by every such command (typing ~2 ms, pathlib ~6 ms with the
re, urllib.parse and ipaddress it loads, json ~7 ms with re and enum, contextlib, datetime).

Two checks: the modules' own top-level imports (a static reading, so what another module of
the start path still loads cannot hide a regression here), and a fresh interpreter that
imports them, for what they load at run time whoever else is on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from module_probe import top_level_imports

ROOT = Path(__file__).resolve().parents[2]
# the client's modules on the start path (run of a stored image, image list, list, status)
START_PATH = ("registry/client/__init__.py", "registry/client/store.py",
              "registry/client/index.py", "registry/client/dirs.py",
              "registry/client/render.py", "registry/client/insecure.py",
              "registry/client/errors.py", "registry/cli/views.py")
NOT_AT_LOAD = ("typing", "collections", "contextlib", "json", "re", "functools", "enum",
               "sqlite3", "pathlib", "datetime")


def test_start_path_modules_import_no_costly_standard_library_at_load() -> None:
    for name in START_PATH:
        imported = top_level_imports(ROOT / name)
        costly = sorted(m for m in imported if m.split(".")[0] in NOT_AT_LOAD)
        assert costly == [], f"{name} imports {costly} when it loads"


def test_type_checking_blocks_are_false_at_run_time() -> None:
    """`TYPE_CHECKING = False` is what keeps those imports out (mypy reads it as True)."""
    for name in START_PATH:
        source = (ROOT / name).read_text()
        if "if TYPE_CHECKING:" in source:
            assert "\nTYPE_CHECKING = False" in source, name


# not loaded at all by importing the store, whoever else is on the path (re with enum,
# contextlib and functools still come with typing, which registry.records loads)
NEVER_LOADED = ("json", "sqlite3", "pathlib", "fnmatch", "urllib", "ipaddress", "datetime",
                "shutil", "tempfile", "threading")


def test_importing_the_store_loads_none_of_them() -> None:
    code = ("import sys\nimport registry.client.store, registry.client.index, "
            "registry.client.dirs, registry.client.insecure, registry.client.render\n"
            "print(' '.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT)
    loaded = set(done.stdout.split())
    assert "registry.client.store" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in NEVER_LOADED) == []
    assert "_sqlite3" in loaded  # the index's C module, without the package's adapters


def test_paths_are_strings_named_as_pathlib_named_them(tmp_path: Path, monkeypatch) -> None:
    from registry.client.dirs import ConfigDirs, default_store_dir, plain_path
    from registry.client.store import ImageStore

    for text in ("/a//b/./c/", "a/./b", "./x.aci", "../up/./x", "/", ".", "a/../b", "//x"):
        assert plain_path(text) == str(Path(text)) or text == "//x", text  # (// is pathlib's)
    assert plain_path("//x") == "/x"
    monkeypatch.setenv("PYRKT_DIR", f"{tmp_path}//store/./")
    assert default_store_dir() == str(tmp_path / "store")
    store = ImageStore()
    assert store.directory == str(tmp_path / "store") and repr(store) == (
        f"ImageStore({str(tmp_path / 'store')!r})")
    layout = sorted(n for n in os.listdir(store.directory) if not n.startswith("index.db-"))
    assert layout == ["images", "index.db", "locks", "tmp", "trees"]  # (-wal, -shm)
    dirs = ConfigDirs.from_env(tmp_path / "sys/", f"{tmp_path}/local/.", str(tmp_path / "user"))
    assert dirs.layers() == [str(tmp_path / "sys"), str(tmp_path / "local"),
                             str(tmp_path / "user")]
