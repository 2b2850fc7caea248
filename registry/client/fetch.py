"""Fetching images into the store: discovery, signature first, one streaming pass, atomic import.

    from registry.client import ImageStore, FetchOptions, fetch_image
    image = fetch_image("example.com/app:v1", ImageStore(), FetchOptions())

A reference is an app string (`name[:version][,label=value...]`, resolved by appc discovery), an
`https://` URL of an ACI (its signature at URL + `.asc`), a local `.aci` file (its signature next
to it as `.aci.asc`) or the ID of a stored image. For a remote image the signature comes first:
its signer must be a key trusted for the image name (the name itself, a parent path, or root)
before a byte of the image is downloaded. A 202 answer for the signature means "being made":
it is asked again after the download, as rkt did. The image streams once through decompression,
hashing and validation (registry.aci.read_aci) into a file inside the store, the signature is
verified over that file, the manifest's name and labels are checked against what was asked,
dependencies are fetched, and only then is the image published. Any refusal leaves the store as
it was; an interrupted download keeps its bytes so the next attempt resumes with `Range`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from registry.discovery import (
    AppRef,
    DiscoveryError,
    discover_endpoints,
    discover_pubkeys,
    host_arch,
    host_os,
    parse_app_string,
)
from registry.progress import Progress
from registry.signing import StreamingVerifier

from .config import ClientConfig
from .dirs import ConfigDirs
from .download import (
    ChunkReader,
    Download,
    DownloadInterrupted,
    DownloadRefused,
    check_scheme,
    get_small,
    probe,
    start_download,
    wait_for,
)
from .errors import ClientError, FetchError, ImageNotFound
from .index import Remote
from .insecure import InsecureOptions
from .refs import classify, label_mismatch
from .session import ClientSession, build_session
from .signatures import SignatureCheck
from .store import ImageStore, StoredImage
from .streams import verifier_feed
from .trust import TrustStore

# Function-local imports keep `pyrkt` start-up fast: modules load when a command uses them.

PULL_POLICIES = ("new", "update", "never")
MAX_DEPENDENCY_DEPTH = 32


@dataclass
class FetchOptions:
    """How to fetch. Every field has a safe default (verify everything, HTTPS only)."""

    insecure: InsecureOptions = field(default_factory=InsecureOptions)
    pull_policy: str = "new"  # new: use the store when it has the image; update: ask the server
    config_dirs: ConfigDirs | None = None  # None: ConfigDirs.from_env()
    trust: TrustStore | None = None  # None: the trust store of config_dirs
    session: requests.Session | None = None  # None: built from config_dirs (auth.d, domains.d)
    port: int | None = None  # reach the registry on this port (testing); else per-domain config
    ca_bundle: str | None = None
    progress: Progress | None = None  # registry.progress: one task per download
    log: Callable[[str], None] = field(default=lambda message: None)
    fetch_dependencies: bool = True
    timeout: float = 60.0
    signature_retries: int = 6
    # rkt's --trust-keys-from-https: no key trusted for a name yet -> trust what its discovery
    # serves over HTTPS (with TLS checked) for that name, then verify as usual.
    trust_keys_from_https: bool = False


def fetch_image(ref: str, store: ImageStore, options: FetchOptions | None = None) -> StoredImage:
    """Fetch `ref` (app string, https URL, local .aci file or image ID) into `store`.

    Raises FetchError (or another ClientError) with a message for users; the store is unchanged
    on every refusal.
    """
    fetcher = Fetcher(store, options or FetchOptions())
    for warning in fetcher.options.insecure.warnings():
        fetcher.log(f"warning: {warning}")
    return fetcher.fetch(ref)


MISSING_STATUSES = (401, 403, 404, 410)  # what a registry answers for an image it will not show
PRIVATE_HINT = "check the name and version, or credentials (auth.d) if the repository is private"


class _NoSuchEndpoint(FetchError):
    """This candidate endpoint has the image but no signature: try the next one."""


class _NoSuchImage(_NoSuchEndpoint):
    """This candidate endpoint does not have the image at all (`.url`, `.status`)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url} — HTTP {status}")
        self.url = url
        self.status = status


def describe_app(app: AppRef) -> str:
    """`name:version (os/arch, label=value...)` for messages."""
    labels = app.labels
    extra = "".join(f", {k}={v}" for k, v in labels.items() if k not in ("version", "os", "arch"))
    return (f"{app.name}:{app.version} ({labels.get('os', host_os())}/"
            f"{labels.get('arch', host_arch())}{extra})")


def check_platform(app: AppRef) -> None:
    """The os/arch labels the user gave must be a pair appc knows (registry.aci's table):
    no valid image could carry anything else, so there is nothing to ask a server for."""
    from registry.aci import ManifestError
    from registry.aci.names import VALID_OS_ARCH, check_os_arch

    given = app.given or frozenset()
    if "os" not in given and "arch" not in given:
        return
    wanted = {k: app.labels[k] for k in ("os", "arch") if k in app.labels}
    if "os" not in given and wanted.get("os") not in VALID_OS_ARCH:
        return  # an unusual host os filled in by default: let the server decide
    try:
        check_os_arch(wanted, "labels")
    except ManifestError as error:
        raise FetchError(f"cannot fetch {app}: {str(error).removeprefix('labels: ')}") from None


class Fetcher:
    """One fetch operation (and the dependencies it pulls in)."""

    def __init__(self, store: ImageStore, options: FetchOptions) -> None:
        if options.pull_policy not in PULL_POLICIES:
            raise FetchError(f'unknown pull policy "{options.pull_policy}"; choose one of '
                             + ", ".join(PULL_POLICIES))
        self.store = store
        self.options = options
        dirs = options.config_dirs or ConfigDirs.from_env()
        self.trust = options.trust or TrustStore(dirs)
        self.signatures = SignatureCheck(self.trust, self.log, trust_flags=self._trust_flags())
        self._session = options.session
        self._dirs = dirs
        self._active: set[str] = set()  # what is being fetched right now (dependency cycles)
        self._local_parent: Path | None = None  # the local file whose dependencies are fetched

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = build_session(ClientConfig.load(self._dirs),
                                          insecure=self.options.insecure,
                                          ca_bundle=self.options.ca_bundle)
        return self._session

    def log(self, message: str) -> None:
        self.options.log(message)

    def _trust_flags(self) -> str:
        """The `pyrkt trust` flags that reach the server the way this fetch does (for hints)."""
        import shlex

        flags = []
        if self.options.insecure.allow_http:
            flags.append("--insecure-allow-http")
        if self.options.insecure.skip_tls_check:
            flags.append("--insecure-options=tls")
        if self.options.port:
            flags.append(f"--port={self.options.port}")
        if self.options.ca_bundle:
            flags.append(f"--ca-bundle={shlex.quote(str(self.options.ca_bundle))}")
        return " ".join(flags)

    def insecure_for(self, host: str) -> InsecureOptions:
        session = self.session
        if isinstance(session, ClientSession):
            return session.insecure_for(host)
        return self.options.insecure

    def _url_insecure(self, url: str) -> InsecureOptions:
        return self.insecure_for(urlsplit(url).hostname or "")

    # entry -----------------------------------------------------------------------------------

    def fetch(self, ref: str) -> StoredImage:
        kind = classify(ref)
        if kind == "docker":
            return self.fetch_docker(ref)
        if kind == "id":
            try:
                return self.store.get(ref)
            except ImageNotFound as error:
                raise FetchError(f"{error}; an image ID can only name an image already in the "
                                 f"store") from None
        if kind == "file":
            return self.fetch_file(Path(ref.removeprefix("file://")))
        if kind == "url":
            return self.fetch_url(ref)
        try:
            app = parse_app_string(ref)
        except DiscoveryError as error:
            raise FetchError(str(error)) from None
        return self.fetch_app(app)

    def fetch_docker(self, ref: str) -> StoredImage:
        """docker:// images are pulled and squashed by registry.docker (unsigned, as in rkt)."""
        # Imported here to keep start-up fast: docker2aci's modules load only for docker://.
        from registry.client.docker_fetch import fetch_docker_image
        from registry.docker import DockerError
        from registry.docker.reference import parse_reference

        self.log(f"fetching Docker image {ref}")
        try:
            # --ca-bundle, else the registry host's domains.d caBundle (as for app names).
            ca_bundle = self.options.ca_bundle
            if ca_bundle is None:
                host = urlsplit(f"//{parse_reference(ref).registry}").hostname or ""
                found = ClientConfig.load(self._dirs).for_host(host).ca_bundle
                ca_bundle = str(found) if found else None
            result = fetch_docker_image(self.store, ref, insecure=self.options.insecure,
                                        pull_policy=self.options.pull_policy,
                                        ca_bundle=ca_bundle,
                                        progress=self.options.progress)
        except DockerError as error:
            raise FetchError(error.with_hint("--insecure-options=http,tls")) from None
        return result.image

    # app strings -----------------------------------------------------------------------------

    def stored_match(self, app: AppRef) -> StoredImage | None:
        """The newest stored image satisfying `app` (same rules as the post-download check)."""
        for image in sorted(self.store.list(), key=lambda i: i.import_stamp, reverse=True):
            if label_mismatch(image.name, image.labels, app) is None:
                return image
        return None

    def fetch_app(self, app: AppRef) -> StoredImage:
        key = str(app)
        if key in self._active:
            raise FetchError(f"dependency cycle: {app.name} depends on itself")
        if len(self._active) > MAX_DEPENDENCY_DEPTH:
            raise FetchError(f"dependencies nest deeper than {MAX_DEPENDENCY_DEPTH} levels")
        policy = self.options.pull_policy
        if policy in ("new", "never"):
            stored = self.stored_match(app)
            if stored is not None:
                self.log(f"using image from the local store for {key}")
                return stored
            if policy == "never":
                raise FetchError(f"image {key} is not in the local store and --pull-policy=never "
                                 f"forbids fetching it")
        check_platform(app)
        self._active.add(key)
        try:
            return self._discover_and_fetch(app)
        finally:
            self._active.discard(key)

    def _trust_keys_from_https(self, app: AppRef, insecure: InsecureOptions,
                               port: int | None) -> None:
        if not self.options.trust_keys_from_https or self.trust.keys_for(app.name):
            return
        if insecure.skip_tls_check or insecure.skip_image_check:
            # rkt too: keys are only worth trusting when TLS proved where they came from.
            self.log("warning: --trust-keys-from-https does nothing with --insecure-options="
                     + ("tls" if insecure.skip_tls_check else "image"))
            return
        # Imported here, as the module does for what only some fetches need.
        from .keys import keys_from_location

        try:
            result = discover_pubkeys(app.name, session=self.session, insecure_tls=False,
                                      allow_http=False, port=port, timeout=self.options.timeout)
        except DiscoveryError as error:
            raise FetchError(f"--trust-keys-from-https: cannot discover keys for {app.name}: "
                             f"{error}") from None
        https = [url for url in result.pubkeys if url.startswith("https://")]
        if not https:
            raise FetchError(f"--trust-keys-from-https: {app.name} names no key over HTTPS "
                             f"(found: {', '.join(result.pubkeys) or 'none'})")
        for url in https:
            for found in keys_from_location(url, self.session, InsecureOptions()):
                path = self.trust.add(found.key, prefix=app.name)
                self.log(f'trusting key {found.key.describe()} from {url} for prefix '
                         f'"{app.name}" (--trust-keys-from-https) at "{path}"')

    def _discover_and_fetch(self, app: AppRef) -> StoredImage:
        domain = app.name.split("/", 1)[0]
        insecure = self.insecure_for(domain)
        port = self.options.port
        mirror = None
        if isinstance(self.session, ClientSession):
            mirror = self.session.mirror_for(domain)
            if port is None:
                port = self.session.port_for(domain)
        self._trust_keys_from_https(app, insecure, port)
        self.log(f"searching for app image {app}")
        try:
            found = discover_endpoints(app, session=self.session,
                                       insecure_tls=insecure.skip_tls_check,
                                       allow_http=insecure.allow_http, port=port,
                                       timeout=self.options.timeout, mirror=mirror)
        except DiscoveryError as error:
            raise FetchError(f"discovery failed for {app.name}: {error}") from None
        missing: list[_NoSuchImage] = []
        unsigned: list[str] = []
        for endpoint in found.endpoints:
            try:
                return self.fetch_remote(endpoint.aci, endpoint.asc, expect=app)
            except _NoSuchImage as error:
                missing.append(error)
            except _NoSuchEndpoint as error:
                unsigned.append(str(error))
        if unsigned:
            raise FetchError(f"image {app} is unsigned: no signature at the endpoints "
                             f"discovered at {found.found_at}:\n  " + "\n  ".join(unsigned)
                             + "".join(f"\n  {m} (no image)" for m in missing)
                             + "\nrefusing an unsigned image (--insecure-options=image skips "
                             "the signature check)")
        if len(missing) == 1:
            raise FetchError(f"no such image: {describe_app(app)} at {missing[0]}; "
                             f"{PRIVATE_HINT}")
        raise FetchError(f"no such image: {describe_app(app)} at any endpoint discovered at "
                         f"{found.found_at}:\n  " + "\n  ".join(str(m) for m in missing)
                         + f"\n{PRIVATE_HINT}")

    # URLs ------------------------------------------------------------------------------------

    def fetch_url(self, url: str) -> StoredImage:
        check_scheme(url, self._url_insecure(url), "the image")
        remote = self.store.remote(url)
        if remote is not None and self.options.pull_policy in ("new", "never"):
            self.log(f"using image from the local store for {url}")
            return self.store.get(remote.image_id)
        if self.options.pull_policy == "never":
            raise FetchError(f"{url} is not in the local store and --pull-policy=never forbids "
                             f"fetching it")
        return self.fetch_remote(url, url + ".asc", expect=None)

    def fetch_remote(self, aci_url: str, asc_url: str, *, expect: AppRef | None) -> StoredImage:
        """Signature, then image; everything checked before the store changes."""
        insecure = self._url_insecure(aci_url)
        remote = self.store.remote(aci_url)
        if remote is not None and remote.fresh() and self.options.pull_policy == "update":
            self.log(f"using cached image for {aci_url} (fresh for "
                     f"{int(remote.download_time + remote.max_age - time.time())} s more)")
            return self.store.get(remote.image_id)
        signature: bytes | None = None
        deferred = False
        if not insecure.skip_image_check:
            self.log(f"downloading signature from {asc_url}")
            answer = get_small(self.session, asc_url, self._url_insecure(asc_url),
                               "the signature", self.options.timeout)
            if answer.status == 200:
                signature = answer.body
                # the signer is checked before a byte of the image is fetched
                if expect is not None:
                    self.signatures.trusted_signers(signature, expect.name)
                else:
                    self.signatures.require_known_signer(signature, aci_url)
            elif answer.status == 202:
                deferred = True
                self.log("the signature is not ready yet (HTTP 202); asking again after the "
                         "download")
            elif answer.status in MISSING_STATUSES:
                # Is the image itself there? Only then is this about an unsigned image.
                status = probe(self.session, aci_url, insecure, "the image", self.options.timeout)
                if status in MISSING_STATUSES:
                    if expect is not None:
                        raise _NoSuchImage(aci_url, status)
                    raise FetchError(f"no such image at {aci_url} — HTTP {status}; check the "
                                     f"URL, or credentials (auth.d) if the repository is "
                                     f"private")
                if expect is not None:
                    raise _NoSuchEndpoint(f"{asc_url}: HTTP {answer.status}")
                raise FetchError(f"no signature for the image at {asc_url} (HTTP "
                                 f"{answer.status}): refusing an unsigned image (use "
                                 f"--insecure-options=image to skip the signature check)")
            else:
                raise FetchError(f"no signature for the image at {asc_url} (HTTP "
                                 f"{answer.status}): refusing an unsigned image (use "
                                 f"--insecure-options=image to skip the signature check)")
        etag = remote.etag if remote is not None else None
        self.log(f"downloading image from {aci_url}")
        try:
            download = start_download(self.session, aci_url, Path(self.store.directory, "tmp"),
                                      insecure, etag=etag, timeout=self.options.timeout,
                                      lock_dir=Path(self.store.directory, "locks"))
        except DownloadRefused as error:
            if expect is not None and error.status in MISSING_STATUSES:
                raise _NoSuchImage(aci_url, error.status) from None
            raise
        if download.not_modified and remote is not None:
            self.log(f"image at {aci_url} not modified (HTTP 304): using the stored copy")
            self.store.save_remote(Remote(aci_url, asc_url, download.etag, download.max_age,
                                          time.time(), remote.image_id))
            return self.store.get(remote.image_id)
        if download.not_modified:
            raise FetchError(f"{aci_url} answered 304 Not Modified to a request that was not "
                             f"conditional")
        return self._receive(download, asc_url, signature, deferred, expect)

    def _receive(self, download: Download, asc_url: str, signature: bytes | None,
                 deferred: bool, expect: AppRef | None) -> StoredImage:
        from registry.aci import ACIError, check_hostable, read_aci
        from registry.aci.pipeline import Prefetch

        label = urlsplit(download.url).path.rsplit("/", 1)[-1] or download.url
        bar = self.options.progress(label, download.total) if self.options.progress else None
        # With the signature in hand, check it in the same pass (a helper process on a pipe).
        candidates = self.signatures.issuer_keys(signature) if signature is not None else []
        verifier = (StreamingVerifier(signature, candidates)
                    if signature is not None and candidates else None)
        feed = verifier_feed(verifier)
        keep_partial = False
        try:
            # One pass, each stage in its own thread so the two cores stay busy: the network
            # and the partial file here; the signature's SHA-512 over the compressed bytes in
            # its process, fed from a queue; inflating, the image's SHA-512 and the tar checks
            # in read_aci's threads. Bounded queues keep memory flat.
            chunks = download.stream(bar.update if bar else None)
            reader = ChunkReader(Prefetch(_tee(chunks, feed.put) if feed else chunks, depth=4))
            try:
                info = read_aci(reader)
                while reader.read(1024 * 1024):
                    pass  # read_aci reads to EOF; anything after it is still part of the file
                # What the registry refuses on upload, the client refuses here too.
                check_hostable(str(info.manifest.name),
                               {item.name: item.value for item in info.manifest.labels})
            except DownloadInterrupted:
                keep_partial = True
                raise
            except ACIError as error:
                cause = error.__cause__ or error.__context__
                if isinstance(cause, DownloadInterrupted):
                    keep_partial = True
                    raise cause from None
                raise FetchError(f"refusing {download.url}: not a valid ACI: {error}") from None
            finally:
                reader.close()
            if bar:
                bar.close()
                bar = None
            _fsync(download.partial)
            name = str(info.manifest.name)
            if deferred:
                signature = self._signature_after_wait(asc_url)
            if feed is not None:
                feed.close()  # every byte is in the verifier's pipe
            if self._url_insecure(download.url).skip_image_check:
                pass
            elif verifier is not None:
                assert signature is not None
                self.signatures.check_streamed(verifier, signature, name, download.url)
            else:
                assert signature is not None
                self.signatures.verify_file(signature, download.partial, name, download.url)
            if expect is not None:
                why = label_mismatch(name, {lab.name: lab.value for lab in info.manifest.labels},
                                     expect)
                if why is not None:
                    raise FetchError(f"refusing {download.url}: it is not the image asked for "
                                     f"({expect}): {why}")
            self.fetch_dependencies(info.manifest_bytes)
            remote = Remote(download.url, asc_url, download.etag, download.max_age, time.time())
            return self.store.commit(download.partial, info, remote=remote, signature=signature)
        finally:
            if verifier is not None:
                verifier.abort()  # after finish() this only removes its scratch files
            if feed is not None:
                feed.close_quietly()
            if bar:
                bar.close()
            if keep_partial:
                download.close()
            else:
                download.discard()

    def _signature_after_wait(self, asc_url: str) -> bytes:
        last = 202
        for attempt in range(self.options.signature_retries):
            answer = get_small(self.session, asc_url, self._url_insecure(asc_url),
                               "the signature", self.options.timeout)
            if answer.status == 200:
                return answer.body
            last = answer.status
            if answer.status != 202:
                break
            wait_for(answer.retry_after, attempt)
        raise FetchError(f"no signature for the image at {asc_url} (still HTTP {last} after the "
                         f"download): refusing an unsigned image")

    # local files -----------------------------------------------------------------------------

    def fetch_file(self, path: Path) -> StoredImage:
        from registry.aci import ACIError

        if not path.is_file():
            raise FetchError(f"{path}: no such file")
        insecure = self.options.insecure
        asc = path.with_name(path.name + ".asc")
        signature = None
        if not insecure.skip_image_check:
            if not asc.is_file():
                raise FetchError(f"no signature next to {path} (expected {asc}): refusing an "
                                 f"unsigned image (use --insecure-options=image to skip the "
                                 f"signature check)")
            signature = asc.read_bytes()
        # As for a download: the signature checked in the same pass as the copy into the
        # store (in its process, fed from a queue), not over the copy afterwards.
        candidates = self.signatures.issuer_keys(signature) if signature is not None else []
        verifier = StreamingVerifier(signature, candidates) if signature and candidates else None
        feed = verifier_feed(verifier)
        try:
            with path.open("rb") as source, self.store.temporary_file() as (temp, handle):
                try:
                    info = self.store.read_into(source, handle, also=feed)
                except ACIError as error:
                    raise FetchError(f"refusing {path}: not a valid ACI: {error}") from None
                name = str(info.manifest.name)
                if verifier is not None:
                    assert feed is not None and signature is not None
                    feed.close()  # every byte is in the verifier's pipe
                    self.signatures.check_streamed(verifier, signature, name, str(path))
                elif signature is not None:
                    self.signatures.verify_file(signature, temp, name, str(path))
                self._local_parent = path
                try:
                    self.fetch_dependencies(info.manifest_bytes)
                finally:
                    self._local_parent = None
                return self.store.commit(temp, info, signature=signature)
        finally:
            if verifier is not None:
                verifier.abort()  # after finish() this only removes its scratch files
            if feed is not None:
                feed.close_quietly()

    # dependencies ----------------------------------------------------------------------------

    def fetch_dependencies(self, manifest_bytes: bytes) -> None:
        if not self.options.fetch_dependencies:
            return
        manifest: dict[str, Any] = json.loads(manifest_bytes)
        for dep in manifest.get("dependencies") or []:
            self.fetch_dependency(dep)

    def fetch_dependency(self, dep: dict[str, Any]) -> StoredImage:
        name = dep.get("imageName", "")
        image_id = dep.get("imageID")
        if image_id:
            try:
                return self.store.get(image_id)
            except ImageNotFound:
                pass
        labels = {item["name"]: item["value"] for item in dep.get("labels") or []}
        filled = {"version": "latest", "os": host_os(), "arch": host_arch(), **labels}
        try:
            app = AppRef(name, filled, frozenset(labels))
        except DiscoveryError as error:
            raise FetchError(f"bad dependency {name!r}: {error}") from None
        self.log(f"fetching dependency {app}")
        parent = self._local_parent
        if parent is not None and _layer_file(parent, name) is not None:
            # A docker2aci --nosquash layer lies beside the file: say so, and ask no network
            # for a name that only exists in that folder.
            raise FetchError(_missing_layer_hint(parent, name, image_id, None))
        try:
            image = self.fetch_app(app)
        except ClientError as error:
            if parent is not None:
                raise FetchError(_missing_layer_hint(parent, name, image_id, error)) from None
            raise FetchError(f"cannot fetch dependency {app}: {error}") from None
        if image_id and image.id != image_id:
            raise FetchError(f"dependency {name}: the fetched image is {image.short_id}, but the "
                             f"manifest requires {image_id[:39]}")
        return image


def _layer_file(parent: Path, name: str) -> Path | None:
    """The file docker2aci --nosquash wrote the layer `name` into, beside `parent` (its naming:
    `...-sha256:HEX-TAG-OS-ARCH.aci` for registry and OCI images, `...-N.aci` counted from the
    top layer for docker-save archives)."""
    found = re.search(r"-(sha256|sha512)_([0-9a-f]{32,})$", name)
    if found:
        digest = f"{found[1]}:{found[2]}"
        matches = sorted(p for p in parent.parent.glob("*.aci") if digest in p.name)
        return matches[0] if matches else None
    numbered = re.fullmatch(r"(.*)-(\d+)\.aci", parent.name)
    if numbered:
        below = parent.with_name(f"{numbered[1]}-{int(numbered[2]) + 1}.aci")
        return below if below.is_file() else None
    return None


def _missing_layer_hint(parent: Path, name: str, image_id: str | None,
                        error: ClientError | None) -> str:
    """What to fetch first when a local image's base layer is not in the store."""
    wanted = f"{name}" + (f" (image ID {image_id[:39]})" if image_id else "")
    candidate = _layer_file(parent, name)
    if candidate is not None:
        how = f"fetch its file first: pyrkt fetch --insecure-options=image {candidate}"
    else:
        how = (f"fetch it first, by name or from its file (docker2aci --nosquash writes every "
               f"layer next to the top one, in {parent.parent})")
    cause = f" ({error})" if error is not None else ""
    return f"{parent.name} needs the layer {wanted}, which is not in the store: {how}{cause}"


def _tee(chunks: Iterator[bytes], sink: Callable[[bytes], None]) -> Iterator[bytes]:
    for chunk in chunks:
        sink(chunk)
        yield chunk


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
