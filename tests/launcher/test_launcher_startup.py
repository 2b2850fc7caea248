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
