"""What `pyrkt run` imports: only the fetch machinery (requests, TLS) when it must fetch.

Every `pyrkt` command is a fresh Python process, so each module imported on the way to running
a stored image is paid on every run (requests + urllib3 + ssl alone cost 100-260 ms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_helpers import needs_root
from module_probe import PROBE, modules_of, top_level_imports

HTTP_STACK = ("requests", "urllib3", "ssl", "http.client")


def _loaded_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The HTTP-stack modules a fresh interpreter has loaded after running `code`."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=env, check=True, timeout=60)
    modules = json.loads(result.stdout.splitlines()[-1])
    return [name for name in modules if name.split(".")[0] in HTTP_STACK or name in HTTP_STACK]


def test_client_package_is_lazy_and_keeps_its_names() -> None:
    import registry.client as client

    assert set(client.__all__) == set(client._EXPORTS)
    for name in client.__all__:  # every public name still resolves, from the module it names
        assert getattr(client, name).__module__ == f"registry.client.{client._EXPORTS[name]}"
    with pytest.raises(AttributeError):
        client.no_such_name  # noqa: B018
    assert _loaded_after("import registry.client") == []
    assert _loaded_after("from registry.client import ImageStore, ConfigDirs") == []
    assert "requests" in _loaded_after("from registry.client import fetch_image")


def test_run_path_and_acbuild_import_no_http_stack() -> None:
    assert _loaded_after("import registry.cli.run, registry.cli.pods, registry.launcher.run,"
                         " registry.launcher.prepare, registry.launcher.oneshot") == []
    # acbuild's commands load the launcher only for `acbuild run`.
    code = "import registry.cli.build, sys; assert 'registry.launcher.oneshot' not in sys.modules"
    assert _loaded_after(code) == []


def test_stored_image_by_name_is_prepared_without_the_fetch_machinery(
        tool_image, pyrkt, store: Path) -> None:
    needs_root()
    image = tool_image(name="example.com/startup")
    fetched = pyrkt("fetch", "--insecure-options=image", str(image), check=True)
    short_id = fetched.stdout.split()[-1]  # `fetch` prints the short form
    code = (
        "from pathlib import Path\n"
        "from registry.launcher.options import AppOptions, PodOptions\n"
        "from registry.launcher.prepare import prepare_pod\n"
        f"pod = prepare_pod(Path({str(store)!r}), PodOptions(apps=[AppOptions("
        "image='example.com/startup:1')]), log=print)\n"
        "print(pod.uuid)\n"
    )
    result = subprocess.run([sys.executable, "-c", code + "import sys\n"
                             "print(sorted(m for m in sys.modules if m.startswith(('requests',"
                             " 'urllib3'))))"],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYRKT_DIR=str(store)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "using image from the local store for example.com/startup:1,os=linux," \
                       "arch=amd64"
    assert lines[-1] == "[]"  # resolved from the store: requests never imported
    manifest = json.loads(pyrkt("cat-manifest", lines[1], check=True).stdout)
    assert manifest["apps"][0]["image"]["id"].startswith(short_id)

    # A name the store does not have still goes to the client's fetch, and its words.
    missing = pyrkt("prepare", "--pull-policy=never", "example.com/not-stored")
    assert missing.returncode != 0
    assert "not in the local store and --pull-policy=never forbids fetching it" in missing.stderr


# What the lean entry's commands must not load on their way (each is paid by every start):
# click (the lean entry exists to skip it), dataclasses (inspect, ast, dis: registry.records
# instead), sockets and the terminal's modules (only for pods with ports or --interactive).
NEVER_ON_START = ("click", "dataclasses", "inspect", "ast", "socket", "selectors", "termios")
# ... and for the listings, nothing of the stage1 either: ctypes, shutil (bz2, lzma), sqlite3
NOT_FOR_LISTINGS = ("ctypes", "shutil", "sqlite3", "bz2", "lzma")
# ... and for `run --net=host` and `image list`: no tree is deleted (shutil: bz2, lzma), no
# thread started (threading; the network namespace's thread is for pods that have one), no
# image imported (the store's download and import queues), and ctypes' C module called without
# its Python layer (~1.5 ms: registry.launcher.linux)
NOT_FOR_RUN_OR_IMAGES = ("shutil", "bz2", "lzma", "threading", "queue", "ctypes", "struct")

# ... and for `run --net=host`, `list`, `status`, `image list`: none of the standard library's
# modules that cost a start milliseconds each (typing; pathlib with urllib.parse and ipaddress;
# json, re and enum; contextlib, functools): what the commands need of them is done with os,
# os.path, registry.jsontext and plain loops (see registry.launcher.pods)
NOT_ON_START = ("typing", "pathlib", "json", "re", "enum", "contextlib", "functools",
                "urllib", "ipaddress", "fnmatch")
REPO = Path(__file__).resolve().parents[2]


def _lean_modules(store: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    # -I -S: as the installed console script starts (the development venv's editable finder,
    # a .pth file read at start-up, loads re and more itself); the run path needs nothing from
    # site-packages
    probe = f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + PROBE
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe, *args],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYRKT_DIR=str(store)))
    assert result.returncode == 0, result.stdout + result.stderr
    return modules_of(result.stdout), result


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


def test_lean_commands_load_only_what_they_run(tool_image, pyrkt, store: Path) -> None:
    """`pyrkt run` of a stored image, `list`, `status` and `image list`, as the console script
    runs them."""
    needs_root()
    image = tool_image(name="example.com/lean")
    image_id = pyrkt("fetch", "--insecure-options=image", str(image), check=True).stdout.split()[-1]
    # the first run renders the image's tree into the store (extraction: the format core); a
    # start is every run after it
    pyrkt("run", "--net=host", image_id, check=True)
    saved = store.parent / "uuid"
    modules, result = _lean_modules(store, "run", "--net=host", f"--uuid-file-save={saved}",
                                    image_id, "--", "exit", "0")
    assert "registry.launcher.stage1_builtin" in modules, result.stderr  # the pod did run
    assert _loaded(modules, NEVER_ON_START) == []
    assert _loaded(modules, NOT_FOR_RUN_OR_IMAGES) == []
    assert _loaded(modules, NOT_ON_START) == []
    uuid = saved.read_text().strip()
    assert "exited" in pyrkt("status", uuid, check=True).stdout
    for args in (("list",), ("status", uuid), ("image", "list")):
        modules, result = _lean_modules(store, *args)
        assert result.stdout.startswith(("UUID", "state=", "ID")), result.stdout
        assert _loaded(modules, NEVER_ON_START) == [], args
        # (sqlite's C module, which `image list` reads the index with, imports functools)
        allowed = ("functools",) if args[0] == "image" else ()
        assert [m for m in _loaded(modules, NOT_ON_START) if m not in allowed] == [], args
        if args[0] != "image":  # the image store is sqlite's
            assert _loaded(modules, NOT_FOR_LISTINGS) == [], args
        else:
            assert _loaded(modules, NOT_FOR_RUN_OR_IMAGES) == [], args


# The rest of the start path (the lower launcher and client modules have tests of their own:
# tests/launcher/test_launcher_lean_imports.py, tests/client/test_client_lean_imports.py)
START_MODULES = ("cli/entry", "cli/flags", "cli/pod_flags", "cli/context",
                 "cli/launcher_errors", "launcher/__init__", "launcher/run",
                 "launcher/prepare", "launcher/pods", "launcher/stage1_builtin",
                 "launcher/options", "launcher/manage", "launcher/errors", "records",
                 "jsontext", "lazy", "errors", "__init__")
COSTLY_AT_LOAD = NOT_ON_START + ("signal", "collections", "datetime", "sqlite3", "dataclasses",
                                 "subprocess", "socket", "threading", "shutil")


@pytest.mark.parametrize("name", START_MODULES)
def test_start_modules_import_nothing_costly_at_load(name: str) -> None:
    path = REPO / "registry" / f"{name}.py"
    costly = sorted(m for m in top_level_imports(path) if m.split(".")[0] in COSTLY_AT_LOAD)
    assert costly == [], f"registry/{name}.py imports {costly} when it loads"
