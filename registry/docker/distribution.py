"""Pulling from a Docker Registry v2 / OCI distribution API: auth, manifests, verified blobs."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse, urlsplit

import requests

from registry.discovery.client import network_cause
from registry.discovery.tlserrors import UNKNOWN_CA, tls_problem
from registry.docker.blobs import CHUNK, MAX_JSON_BYTES, load_json, parse_digest
from registry.docker.credentials import credentials_for
from registry.docker.errors import DockerError
from registry.docker.image import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Layer,
    SourceImage,
    diff_ids,
    layer_descriptors,
    select_platform,
)
from registry.docker.reference import DockerReference
from registry.progress import Progress

ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
TIMEOUT = 60
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def _is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")


class RegistryClient:
    """A small v2 API client for one registry and repository, anonymous or authenticated.

    HTTPS with verified certificates is the rule; plain HTTP is tried only for a loopback
    registry or when allowed (`allow_http`, docker2aci's -insecure-allow-http), certificates go
    unchecked only when `skip_verify` (-insecure-skip-verify); `insecure` means both.
    """

    def __init__(self, ref: DockerReference, *, insecure: bool = False,
                 docker_config: Path | None = None, ca_bundle: str | None = None,
                 session: requests.Session | None = None, allow_http: bool = False,
                 skip_verify: bool = False) -> None:
        self.ref = ref
        self.allow_http = insecure or allow_http
        self.skip_verify = insecure or skip_verify
        self.insecure = self.allow_http and self.skip_verify
        # requests' `verify`: False, True (system CAs / REQUESTS_CA_BUNDLE) or a CA file.
        self.verify: bool | str = False if self.skip_verify else (ca_bundle or True)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "pyrkt-docker2aci"
        self.credentials = credentials_for(ref.registry, docker_config)
        self._authorization: str | None = None
        self.base_url = ""
        self.verified_tls = False

    # -- connection -----------------------------------------------------------------------
    def connect(self) -> None:
        """Find the API root (`/v2/`), HTTPS first, and learn the auth challenge."""
        schemes = ["https"]
        if self.allow_http or _is_local(self.ref.host):
            schemes.append("http")
        errors = []
        tls_refused = False
        for scheme in schemes:
            url = f"{scheme}://{self.ref.registry}/v2/"
            try:
                response = self.session.get(url, timeout=TIMEOUT, verify=self.verify)
            except requests.exceptions.SSLError as err:
                problem = tls_problem(err, urlsplit(url).hostname)
                fix = '; trust its CA with --ca-bundle FILE' if problem.kind == UNKNOWN_CA else ""
                tls_refused = tls_refused or problem.kind == UNKNOWN_CA
                errors.append(f"{url}: TLS error: {problem.text}{fix}")
                continue
            except requests.RequestException as err:
                errors.append(f"{url}: {network_cause(err)}")
                continue
            self.base_url = f"{scheme}://{self.ref.registry}"
            self.verified_tls = scheme == "https" and not self.skip_verify
            if response.status_code == 401:
                self._authenticate(response)
            return
        # The flag that allows plain HTTP differs per command, so each caller words the hint.
        raise DockerError(f"cannot reach registry {self.ref.registry}: {'; '.join(errors)}",
                          reason="network",
                          insecure_would_help=not self.insecure and not tls_refused)

    def _authenticate(self, response: requests.Response) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic":
            if not self.credentials:
                raise DockerError(f"registry {self.ref.registry} wants a login; none in the docker "
                                  "config", reason="unauthorized")
            user, password = self.credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise DockerError(f"registry {self.ref.registry}: unsupported auth challenge "
                              f"{challenge!r}", reason="unauthorized")
        self._authorization = f"Bearer {self._fetch_token(params)}"

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params["realm"]
        parsed = urlparse(realm)
        if parsed.scheme not in ("https", "http") or (
                parsed.scheme == "http" and not (self.allow_http or _is_local(parsed.hostname or ""))):
            raise DockerError(f"token realm {realm!r} is not an HTTPS URL", reason="insecure")
        query = {"scope": f"repository:{self.ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        try:
            response = self.session.get(realm, params=query, auth=self.credentials,
                                        timeout=TIMEOUT, verify=self.verify)
        except requests.RequestException as err:
            raise DockerError(f"token service {realm}: {err}", reason="network") from err
        if response.status_code in (401, 403):
            raise DockerError(f"token service {realm} refused "
                              f"{'the stored credentials' if self.credentials else 'anonymous access'}"
                              f" for {self.ref.repository}", reason="unauthorized")
        if response.status_code != 200:
            raise DockerError(f"token service {realm} answered {response.status_code}",
                              reason="unauthorized")
        document = load_json(response.content[:MAX_JSON_BYTES + 1], "token response")
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise DockerError(f"token service {realm} gave no token", reason="unauthorized")
        return token

    def _get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        url = f"{self.base_url}/v2/{self.ref.repository}/{path}"
        request_headers = dict(headers or {})
        if self._authorization:
            request_headers["Authorization"] = self._authorization
        try:
            response = self.session.get(url, headers=request_headers, stream=True,
                                        timeout=TIMEOUT, verify=self.verify)
        except requests.RequestException as err:
            raise DockerError(f"GET {url}: {err}", reason="network") from err
        if response.status_code == 401 and self._authorization is None:
            response.close()
            self._authenticate(response)
            return self._get(path, headers)
        if response.status_code in (401, 403):
            response.close()
            raise DockerError(f"not allowed to pull {self.ref.repository} from "
                              f"{self.ref.registry}", reason="unauthorized")
        if response.status_code == 404:
            response.close()
            raise DockerError(f"{self.ref.registry}/{self.ref.repository}: {path} not found",
                              reason="not-found")
        if response.status_code != 200:
            response.close()
            raise DockerError(f"GET {url}: HTTP {response.status_code}", reason="network")
        return response

    # -- documents and blobs ----------------------------------------------------------------
    def _read_bounded(self, response: requests.Response, what: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
            response.close()
            raise DockerError(f"{what} is larger than the {MAX_JSON_BYTES} byte limit",
                              reason="too-large")
        body = bytearray()
        with response:
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise DockerError(f"{what} is larger than the {MAX_JSON_BYTES} byte limit",
                                      reason="too-large")
        return bytes(body)

    def manifest(self, reference: str) -> tuple[dict[str, Any], str, str]:
        """(document, media type, digest); a digest reference is verified against the bytes."""
        response = self._get(f"manifests/{reference}", {"Accept": ACCEPT})
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        body = self._read_bounded(response, f"manifest {reference}")
        algorithm = parse_digest(reference)[0] if ":" in reference else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
        document = load_json(body, f"manifest {reference}",
                             reference if ":" in reference else None)
        return document, str(document.get("mediaType") or media_type), digest

    def json_blob(self, digest: str) -> dict[str, Any]:
        response = self._get(f"blobs/{digest}")
        return load_json(self._read_bounded(response, f"blob {digest}"), f"blob {digest}", digest)

    def download_blob(self, digest: str, target: Path, size: int | None,
                      progress: Progress | None = None) -> None:
        """Stream a blob to `target`, hashing as it arrives; refuse extra or wrong bytes."""
        algorithm, hexdigest = parse_digest(digest)
        hasher = hashlib.new(algorithm)
        received = 0
        response = self._get(f"blobs/{digest}")
        task = progress(f"layer {hexdigest[:12]}", size) if progress is not None else None
        try:
            with response, target.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    received += len(chunk)
                    if size is not None and received > size:
                        raise DockerError(f"blob {digest} is larger than the {size} bytes the "
                                          "manifest declares", reason="too-large")
                    hasher.update(chunk)
                    out.write(chunk)
                    if task is not None:
                        task.update(len(chunk))
        finally:
            if task is not None:
                task.close()
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest:
            raise DockerError(f"blob {digest}: digest mismatch: got {actual}",
                              reason="digest-mismatch")


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


@contextlib.contextmanager
def pull_image(ref: DockerReference, *, insecure: bool = False, docker_config: Path | None = None,
               ca_bundle: str | None = None, session: requests.Session | None = None,
               workdir: Path | None = None, progress: Progress | None = None,
               allow_http: bool = False, skip_verify: bool = False) -> Iterator[SourceImage]:
    """Pull manifest, config and layers (to a temporary directory) and yield the SourceImage;
    `progress` gets one task per layer download.

    Layers are downloaded once to disk because conversion may read one more than once (a layer
    squash cannot decide in one pass, --nosquash's planning pass); the directory is removed
    when the block ends.
    """
    client = RegistryClient(ref, insecure=insecure, docker_config=docker_config,
                            ca_bundle=ca_bundle, session=session, allow_http=allow_http,
                            skip_verify=skip_verify)
    client.connect()
    document, media_type, digest = client.manifest(ref.reference)
    if media_type in INDEX_TYPES or "manifests" in document:
        descriptor = select_platform(document)
        digest = str(descriptor.get("digest"))
        document, media_type, digest = client.manifest(digest)
    descriptors = layer_descriptors(document)
    config_digest = str(document["config"].get("digest"))
    parse_digest(config_digest)
    config = client.json_blob(config_digest)
    ids = diff_ids(config, len(descriptors))
    with tempfile.TemporaryDirectory(prefix="pyrkt-docker-", dir=workdir) as temp:
        layers = []
        for descriptor, diff_id in zip(descriptors, ids, strict=True):
            layer_digest = descriptor["digest"]
            path = Path(temp) / parse_digest(layer_digest)[1]
            size = descriptor.get("size") if isinstance(descriptor.get("size"), int) else None
            client.download_blob(layer_digest, path, size, progress)
            layers.append(Layer(functools.partial(_open_binary, path), layer_digest, diff_id,
                                layer_digest))
        yield SourceImage(ref, config, config_digest, digest, layers,
                          pinned_over_tls=bool(ref.digest) and client.verified_tls)
