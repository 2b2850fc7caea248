"""`pyrkt run NAME` fetching from a live registry on a non-standard port.

`--port` of `run` is rkt's port forwarding, so the registry's port comes from the client's
configuration: a `domains.d` file in a directory given with `--local-config`/`--user-config`
(the same flags, and the same files, as `pyrkt fetch` and `pyrkt trust`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from launcher_helpers import needs_root
from live_registry import LiveRegistry

pytestmark = [pytest.mark.root, pytest.mark.e2e]

PREFIX = "127.0.0.1/launcher"


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _push(registry: LiveRegistry, aci: Path, name: str) -> None:
    with aci.open("rb") as body:
        answer = registry.api("POST", f"/repositories/{name}/-/images", data=body,
                              headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code in (200, 201), answer.text


def test_run_by_name_from_a_registry_whose_port_comes_from_domains_d(tmp_path, tool_image,
                                                                     pyrkt, store) -> None:
    name = f"{PREFIX}/tool"
    image = tool_image(name=name)
    local, user = tmp_path / "config" / "local", tmp_path / "config" / "user"
    config = ["--local-config", str(local), "--user-config", str(user)]
    with LiveRegistry(tmp_path / "registry", workers=1) as registry:
        _push(registry, image, name)
        # Without the domain's settings the registry is looked for on the standard ports:
        # the client's words (the URLs tried), rkt's exit status, no traceback.
        unreachable = pyrkt("run", *config, "--insecure-options=image,http", name)
        assert unreachable.returncode == 254, unreachable.stderr
        assert "Traceback" not in unreachable.stderr
        assert f"pyrkt: image {name}: discovery failed" in unreachable.stderr

        domains = local / "domains.d"
        domains.mkdir(parents=True)
        (domains / "registry.json").write_text(json.dumps({
            "pyrktKind": "domain", "pyrktVersion": "v1", "domains": [registry.domain],
            "port": registry.port, "insecureOptions": ["http"]}))
        trusted = pyrkt("trust", *config, "--prefix", PREFIX, "--skip-fingerprint-review")
        assert trusted.returncode == 0, trusted.stderr

        ran = pyrkt("run", *config, "--stage1=builtin", name, "--", "hostname", "exit", "7")
        assert ran.returncode == 7, ran.stderr + registry.log()  # the pod's own exit code
        assert "hostname=rkt-" in ran.stdout
        assert "signature verified" in ran.stderr

        prepared = pyrkt("prepare", *config, "--quiet", "--pull-policy=update", name)
        assert prepared.returncode == 0, prepared.stderr
        pyrkt("rm", prepared.stdout.strip(), check=True)
