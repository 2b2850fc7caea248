"""`pyrkt fetch docker://...` / `pyrkt run docker://...`: convert a registry image into the store.

The client's fetch calls `fetch_docker_image` for any image string starting with `docker://`;
`registry.docker` only converts (it knows nothing of the store), the store is the client's.
Docker images carry no appc signature, so, as in rkt, the user must pass
`--insecure-options=image`; the one exception is an image pulled by digest over TLS whose
certificate was verified (the digest pins the content end to end). The store remembers the
source (`docker://REGISTRY/REPOSITORY:TAG` or `@DIGEST`) so the next fetch is a cache hit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from registry.client.index import Remote
from registry.client.insecure import InsecureOptions
from registry.client.store import ImageStore, StoredImage
from registry.docker import (
    DockerError,
    DockerReference,
    convert_squashed,
    output_filename,
    parse_reference,
    pull_image,
)
from registry.progress import Progress

UNSIGNED_HINT = ("Docker images carry no appc signature: pass --insecure-options=image to use "
                 "it anyway, or pull it by digest (NAME@sha256:...) from a registry with "
                 "verified TLS")


@dataclass(frozen=True)
class DockerFetchResult:
    image: StoredImage
    cached: bool  # True: served from the store, nothing was downloaded


def remote_key(ref: DockerReference) -> str:
    """The store's remote URL for a reference: normalized, so `busybox` and
    `docker.io/library/busybox:latest` share one cache entry."""
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag}"
    return f"docker://{ref.registry}/{ref.repository}{suffix}"


def fetch_docker_image(store: ImageStore, source: str, *,
                       insecure: InsecureOptions | None = None, pull_policy: str = "new",
                       docker_config: Path | None = None,
                       ca_bundle: str | None = None,
                       progress: Progress | None = None) -> DockerFetchResult:
    """Pull, squash and import `docker://...` into `store`; reuse the stored copy when known.

    `pull_policy` as the client's: `new` uses the stored conversion of the same reference,
    `update` converts again, `never` only looks in the store. Raises DockerError with a
    user-readable message; the store is unchanged on failure.
    """
    options = insecure or InsecureOptions()
    ref = parse_reference(source)
    if not ref.digest and not options.skip_image_check:
        raise DockerError(f"{source}: {UNSIGNED_HINT}", reason="insecure")
    key = remote_key(ref)
    if pull_policy in ("new", "never"):
        cached = store.remote(key)
        if cached is not None:
            return DockerFetchResult(store.get(cached.image_id), cached=True)
        if pull_policy == "never":
            raise DockerError(f"{source} is not in the local store and --pull-policy=never "
                              "forbids fetching it", reason="not-found")
    allow_insecure_transport = options.allow_http or options.skip_tls_check
    work = Path(store.directory, "tmp")
    with pull_image(ref, insecure=allow_insecure_transport, docker_config=docker_config,
                    ca_bundle=ca_bundle, workdir=work, progress=progress) as image:
        if not image.pinned_over_tls and not options.skip_image_check:
            raise DockerError(f"{source}: pulled by digest but not over verified TLS. "
                              f"{UNSIGNED_HINT}", reason="insecure")
        target = work / f"docker-{time.time_ns()}-{output_filename(ref)}"
        try:
            converted = convert_squashed(image, target)
            stored = store.import_aci(converted.path, remote=Remote(
                url=key, etag=image.manifest_digest, download_time=time.time()))
        finally:
            target.unlink(missing_ok=True)
    return DockerFetchResult(stored, cached=False)
