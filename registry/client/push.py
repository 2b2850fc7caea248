"""The client side of the registry's upload API (requests only: no Flask, no server code).

`push_image(path, registry_url=..., token=...)` streams an ACI to
`POST {registry}/_api/v1/repositories/{name}/-/images` after a preflight that checks the
token, the role and the size limit without sending a byte of the image. Server errors come
back verbatim in `PushError`.
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

API = "/_api/v1"
SIGNATURE_HEADER = "X-Pyrkt-Signature"
CHUNK = 1024 * 1024
TOKEN_ENV = "PYRKT_TOKEN"
REGISTRY_ENV = "PYRKT_REGISTRY_URL"

Progress = Callable[[int, int], None]


class PushError(Exception):
    """The push failed; the message is the server's own when it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class PushResult:
    repository: str
    version: str
    os: str
    arch: str
    image_id: str
    digest: str
    size: int
    signed_by: str
    deduplicated: bool
    unchanged: bool
    registry_url: str

    def aci_url(self) -> str:
        return (f"{self.registry_url}/_aci/{self.repository}/{self.version}/{self.os}/"
                f"{self.arch}/image.aci")


def image_name(path: str | os.PathLike[str]) -> str:
    """The `name` in an ACI's manifest, read from the first tar entries only (no validation:
    the server validates the whole image)."""
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if member.name.lstrip("./") == "manifest" and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is None or member.size > 1024 * 1024:
                        break
                    name = json.loads(handle.read()).get("name")
                    if isinstance(name, str) and name:
                        return name
                    break
    except (OSError, tarfile.TarError, ValueError) as error:
        raise PushError(f"cannot read the image name from {path}: {error}") from error
    raise PushError(f"cannot read the image name from {path}: no manifest with a name")


def default_registry_url(name: str) -> str:
    return os.environ.get(REGISTRY_ENV) or f"https://{name.split('/', 1)[0]}"


class _ProgressReader:
    """A file body for requests that reports progress (len() gives Content-Length)."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self._file = path.open("rb")
        self._total = path.stat().st_size
        self._sent = 0
        self._progress = progress

    def __len__(self) -> int:
        return self._total

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(CHUNK if size is None or size < 0 else max(size, CHUNK))
        self._sent += len(data)
        if self._progress is not None and data:
            self._progress(self._sent, self._total)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self._file.close()


def push_image(
    path: str | os.PathLike[str],
    *,
    registry_url: str | None = None,
    token: str | None = None,
    signature: str | os.PathLike[str] | None = None,
    version: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    session: requests.Session | None = None,
    verify: bool | str = True,
    timeout: float = 60.0,
    auth_headers: dict[str, str] | None = None,
) -> PushResult:
    """Upload `path`; credentials: `token`, else $PYRKT_TOKEN, else `auth_headers` (e.g. the
    client config's auth.d entry for the registry's domain: Basic or Bearer)."""
    aci = Path(path)
    if not aci.is_file():
        raise PushError(f"{aci}: no such file")
    name = name or image_name(aci)
    base = (registry_url or default_registry_url(name)).rstrip("/")
    token = token or os.environ.get(TOKEN_ENV)
    if token:
        headers = {"Authorization": f"Bearer {token}"}
    elif auth_headers:
        headers = dict(auth_headers)
    else:
        raise PushError(f"no API token: pass --token, set {TOKEN_ENV} or add an auth.d entry "
                        "for the registry's domain (an administrator prints a token with "
                        "`pyrkt-registry token create USER`)")
    http = session or requests.Session()
    repo_url = f"{base}{API}/repositories/{quote(name, safe='/')}/-"
    size = aci.stat().st_size
    _check(_request(http, "GET", f"{repo_url}/upload", headers=headers, params={"size": size},
                    timeout=timeout, verify=verify))
    upload_headers = dict(headers, **{"Content-Type": "application/octet-stream"})
    if signature is not None:
        sig_bytes = Path(signature).read_bytes()
        upload_headers[SIGNATURE_HEADER] = base64.b64encode(sig_bytes).decode()
    params = {"version": version} if version else {}
    body = _ProgressReader(aci, progress)
    try:
        response = _request(http, "POST", f"{repo_url}/images", headers=upload_headers,
                            params=params, data=body, timeout=(timeout, None), verify=verify)
    finally:
        body.close()
    data = _check(response)
    return PushResult(registry_url=base, **{k: data[k] for k in (
        "repository", "version", "os", "arch", "image_id", "digest", "size", "signed_by",
        "deduplicated", "unchanged")})


def _request(http: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        return http.request(method, url, **kwargs)
    except requests.RequestException as error:
        raise PushError(f"cannot reach the registry at {url}: {error}") from error


def _check(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.ok and isinstance(data, dict):
        return data
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        raise PushError(str(error.get("message")), status=response.status_code,
                        code=error.get("code"))
    text = response.text.strip()[:500] or response.reason
    raise PushError(f"HTTP {response.status_code} from {response.url}: {text}",
                    status=response.status_code)
