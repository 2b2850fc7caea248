"""The client side of the registry's upload API (requests only: no Flask, no server code).

`push_image(path, registry_url=..., token=...)` streams an ACI to
`POST {registry}/_api/v1/repositories/{name}/-/images` after a preflight that checks the
token, the role and the size limit without sending a byte of the image. Server errors come
back verbatim in `PushError`. The image name is read from the archive's first entries with
registry.aci's own compression detection and tar parser (nothing else is checked here: the
server validates the whole image). Credentials never travel over plain HTTP to another host
unless `allow_http` says so.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from registry.progress import Progress

from .errors import ClientError

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them.

API = "/_api/v1"
SIGNATURE_HEADER = "X-Pyrkt-Signature"
CHUNK = 1024 * 1024
TOKEN_ENV = "PYRKT_TOKEN"
REGISTRY_ENV = "PYRKT_REGISTRY_URL"

class PushError(ClientError):
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
        manifest = _read_manifest(Path(path))
    except OSError as error:
        raise PushError(f"cannot read {path}: {error.strerror or error}") from error
    from registry.aci import ManifestError, decode_json

    try:
        # The format core's decoder: size and depth are bounded before json parses it.
        name = decode_json(manifest, "manifest").get("name")
    except ManifestError as error:
        if error.reason != "invalid-json":
            raise PushError(f"{path} is not a valid ACI: {error}") from None
        name = None
    if isinstance(name, str) and name:
        return name
    raise PushError(f"cannot read the image name from {path}: its manifest has no name")


def _hostable(name: str, version: str | None) -> str:
    """The name (and version) by the registry's own rules (registry.aci), checked before any
    URL is built from them: `127.0.0.1/../../etc` never reaches a request."""
    from registry.aci import ManifestError, check_image_name, check_version

    try:
        check_image_name(name)
        if version is not None:
            check_version(version)
    except ManifestError as error:
        raise PushError(f"refusing to push: {error}") from None
    return name


def _read_manifest(path: Path) -> bytes:
    """The manifest's bytes, read until its entry ends (registry.aci's compression detection,
    decompressor and tar parser, checking the layout on the way)."""
    from registry.aci.compression import (
        MAGIC_LENGTH,
        NONE,
        CountingReader,
        decompressed_chunks,
        detect,
    )
    from registry.aci.errors import ArchiveError
    from registry.aci.layout import LayoutChecker
    from registry.aci.tarstream import BLOCK, TarStreamParser

    compression = NONE
    fed = 0
    parser: TarStreamParser | None = None
    with path.open("rb") as handle:
        try:
            prefix = handle.read(MAGIC_LENGTH)
            if not prefix:
                raise ArchiveError("empty file", reason="empty")
            compression = detect(prefix)
            checker = LayoutChecker()
            parser = TarStreamParser(checker)
            chunks = decompressed_chunks(CountingReader(handle, prefix), compression)
            try:
                for chunk in chunks:
                    fed += len(chunk)
                    parser.feed(chunk)
                    if checker.manifest_bytes is not None:
                        return checker.manifest_bytes
                parser.finish()
            finally:
                chunks.close()
            raise ArchiveError("no manifest in archive", reason="missing-manifest")
        except ArchiveError as error:
            reason = error.reason
            if fed and fed < BLOCK and parser is not None and not parser.entries:
                reason = "not-tar"  # shorter than one tar header
            raise PushError(_not_an_aci(path, error, reason, compression)) from None


def _not_an_aci(path: str | os.PathLike[str], error: Exception, reason: str,
                compression: str) -> str:
    from registry.aci.compression import COMPRESSIONS, NONE

    if reason == "empty":
        return f"{path} is not an ACI (an empty file)"
    if reason == "not-tar" and compression == NONE:
        kinds = "/".join(c for c in COMPRESSIONS if c != NONE)
        return f"{path} is not an ACI (not a tar archive, nor {kinds}-compressed)"
    if reason == "not-tar":
        return f"{path} is not an ACI ({compression}-compressed, but not a tar archive inside)"
    return f"{path} is not a valid ACI: {error}"


def default_registry_url(name: str) -> str:
    return os.environ.get(REGISTRY_ENV) or f"https://{name.split('/', 1)[0]}"


def check_registry_url(url: str, *, where: str = "--registry") -> str:
    """`url` without a trailing slash, if it is an http(s) URL with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"{where} needs a URL with a scheme, e.g. https://HOST or "
                        f"http://127.0.0.1:8080 (not {url!r})")
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _ProgressReader:
    """A file body for requests that reports progress (len() gives Content-Length)."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self._file = path.open("rb")
        self._total = path.stat().st_size
        self._task = progress(path.name, self._total) if progress is not None else None

    def __len__(self) -> int:
        return self._total

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(CHUNK if size is None or size < 0 else max(size, CHUNK))
        if self._task is not None and data:
            self._task.update(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self._file.close()
        if self._task is not None:
            self._task.close()


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
    allow_http: bool = False,
    warn: Callable[[str], None] | None = None,
) -> PushResult:
    """Upload `path`; credentials: `token`, else $PYRKT_TOKEN, else `auth_headers` (e.g. the
    client config's auth.d entry for the registry's domain: Basic or Bearer).

    Credentials go over plain HTTP only to a loopback address (with a warning through `warn`)
    or with `allow_http`.
    """
    aci = Path(path)
    if not aci.is_file():
        raise PushError(f"{aci}: no such file")
    base = check_registry_url(registry_url) if registry_url else None
    name = _hostable(name or image_name(aci), version)
    if base is None:
        where = REGISTRY_ENV if os.environ.get(REGISTRY_ENV) else "the registry URL"
        base = check_registry_url(default_registry_url(name), where=where)
    _check_plain_http(base, allow_http, warn)
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


def _check_plain_http(base: str, allow_http: bool, warn: Callable[[str], None] | None) -> None:
    parts = urlsplit(base)
    if parts.scheme != "http":
        return
    host = parts.hostname or ""
    if not allow_http and not is_loopback(host):
        raise PushError(f"refusing to send credentials over plain HTTP to {host} ({base}): use "
                        f"https, or --insecure-allow-http if the network can be trusted")
    if warn is not None:
        warn(f"sending credentials over plain HTTP to {parts.netloc}")


def _request(http: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    from registry.discovery import network_cause, tls_fix, tls_problem

    try:
        return http.request(method, url, **kwargs)
    except requests.RequestException as error:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        if isinstance(error, requests.exceptions.SSLError):
            problem = tls_problem(error, parts.hostname)
            fix = tls_fix(problem.kind, host=parts.hostname,
                          insecure_flag="--insecure-skip-tls-verify",
                          http_flag=f"--registry http://{parts.netloc}")
            raise PushError(f"TLS error talking to the registry at {base}: {problem.text}; "
                            f"{fix}") from error
        raise PushError(f"cannot reach the registry at {base}: {network_cause(error)}") from error


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
