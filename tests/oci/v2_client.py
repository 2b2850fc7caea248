"""Helpers of the /v2/ tests: a raw distribution-API client, skopeo, and storage snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import requests
from live_registry import LiveRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class V2:
    """Raw requests against a live registry's /v2/, authenticated with an API token (or not)."""

    def __init__(self, registry: LiveRegistry, token: str | None) -> None:
        self.registry = registry
        self.token = token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        url = path if path.startswith("http") else self.registry.url(path)
        return requests.request(method, url, headers=headers, timeout=60,
                                allow_redirects=False, **kwargs)

    def push_blob(self, name: str, data: bytes) -> str:
        digest = sha256(data)
        response = self.request("POST", f"/v2/{name}/blobs/uploads/", params={"digest": digest},
                                data=data)
        assert response.status_code == 201, response.text
        return digest

    def push_manifest(self, name: str, reference: str, document: dict[str, Any],
                      media_type: str = OCI_MANIFEST) -> requests.Response:
        return self.request("PUT", f"/v2/{name}/manifests/{reference}",
                            data=json.dumps(document).encode(),
                            headers={"Content-Type": media_type})

    def push_image(self, name: str, tag: str, layer: bytes = b"layer",
                   media_type: str = OCI_MANIFEST) -> tuple[str, dict[str, Any]]:
        """A tiny (not runnable) image: one config and one layer; returns its manifest digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
        document = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(name, config),
                       "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": self.push_blob(name, layer),
                        "size": len(layer)}],
        }
        response = self.push_manifest(name, tag, document, media_type)
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"], document


def error_codes(response: requests.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def policy_file() -> Path:
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "pyrkt-skopeo-policy.json"
    if not policy.exists():
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    return policy


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's skopeo, with an accept-anything policy; the caller checks the outcome."""
    return subprocess.run(["skopeo", "--policy", str(policy_file()), *args],
                          capture_output=True, text=True, timeout=180)


def stored_oci_files(registry: LiveRegistry) -> set[str]:
    """Every file the local storage holds under oci/ (blobs and manifests pushed via /v2/)."""
    root = registry.data_dir / "storage" / "oci"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() \
        else set()


def spooled_uploads(registry: LiveRegistry) -> set[str]:
    spool = registry.data_dir / "tmp" / "oci-uploads"
    return {p.name for p in spool.iterdir()} if spool.exists() else set()


def new_user(registry: LiveRegistry, username: str) -> str:
    """Create a user and return an API token of theirs."""
    response = registry.api("POST", "/users", json={"username": username,
                                                    "password": f"{username}-password-123"})
    assert response.status_code == 201, response.text
    response = registry.api("POST", f"/users/{username}/tokens", json={})
    assert response.status_code == 201, response.text
    return response.json()["token"]
