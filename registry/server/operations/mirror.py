"""The pull-through mirror: names under a mirrored prefix are answered on behalf of upstream.

`pyrkt-registry mirror add PREFIX` makes this registry answer discovery for names under PREFIX
that it does not host, with its own URL layout. The first request for an image discovers it
upstream (appc discovery, with the mirror's port / plain-HTTP / CA settings), streams the ACI
into blob storage and keeps the upstream `.aci.asc` as it came; both are served unchanged, so
clients verify them with the upstream's key, never the mirror's. The prefix's public keys are
the upstream's too (`/_aci/pubkeys/PREFIX/pubkeys.gpg`). A copy is fresh for the upstream's
Cache-Control max-age; after that it is revalidated (If-None-Match) on the next request, and
when upstream cannot be reached the mirror keeps serving what it has (stale-if-error): hosts
without internet still fetch images the mirror has seen.

Clients point a domain at the mirror with a `domains.d` entry
(`"mirror": "https://mirror.example.com/_mirror"`): discovery pages of mirrored names are at
`/_mirror/NAME?ac-discovery=1` (a path no AC name can take, so it never shadows a hosted name).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from flask import Response, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Response as WsgiResponse

from registry.discovery import AppRef, DiscoveryError, discover_endpoints, discover_pubkeys
from registry.discovery.appstring import check_identifier
from registry.server.httputil import blob_response
from registry.server.models import aware
from registry.server.services import audit
from registry.server.services.actor import Actor
from registry.server.services.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError
from registry.server.storage import BlobStorage

from .models import Mirror, MirroredFile

log = logging.getLogger("pyrkt.mirror")

DISCOVERY_ROOT = "/_mirror"

CHUNK = 1024 * 1024
MAX_SMALL_FILE = 1024 * 1024  # signatures and key rings are a few KiB
DEFAULT_FRESH = timedelta(minutes=5)  # upstream said nothing about caching
UPSTREAM_TIMEOUT = 30.0
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.I)


class UpstreamUnavailable(ServiceError):
    status = 502
    code = "upstream-unavailable"


# -- administration ----------------------------------------------------------------------------
def add_mirror(session: Session, actor: Actor, prefix: str, *, domains: tuple[str, ...],
               allow_http: bool = False, port: int | None = None,
               ca_bundle: str | None = None) -> Mirror:
    if not actor.is_site_admin:
        raise Forbidden("only an administrator adds mirrors", code="no-role")
    prefix = prefix.strip().strip("/").lower()
    try:
        check_identifier(prefix, "prefix")
    except ValueError as error:
        raise BadRequest(str(error), code="bad-prefix") from None
    if prefix.split("/", 1)[0] in domains:
        raise BadRequest(f"{prefix} is under a domain this registry hosts itself "
                         f"({', '.join(domains)}); a mirror is for names hosted elsewhere",
                         code="bad-prefix")
    if port is not None and not 0 < port < 65536:
        raise BadRequest("port must be within 1..65535", code="bad-port")
    if session.scalar(select(Mirror).where(Mirror.prefix == prefix)) is not None:
        raise Conflict(f"{prefix} is mirrored already", code="mirror-exists")
    mirror = Mirror(prefix=prefix, allow_http=allow_http, port=port, ca_bundle=ca_bundle)
    session.add(mirror)
    audit.record(session, actor, "mirror.add", prefix, allow_http=allow_http or None, port=port,
                 ca_bundle=ca_bundle)
    session.commit()
    return mirror


def remove_mirror(session: Session, actor: Actor, prefix: str) -> None:
    if not actor.is_site_admin:
        raise Forbidden("only an administrator removes mirrors", code="no-role")
    mirror = session.scalar(select(Mirror).where(Mirror.prefix == prefix.strip("/").lower()))
    if mirror is None:
        raise NotFound(f"{prefix} is not mirrored", code="mirror-not-found")
    audit.record(session, actor, "mirror.remove", mirror.prefix)
    session.delete(mirror)
    session.commit()


def list_mirrors(session: Session) -> list[Mirror]:
    return list(session.scalars(select(Mirror).order_by(Mirror.prefix)))


def describe(mirror: Mirror, session: Session) -> dict[str, object]:
    files = session.scalars(select(MirroredFile).where(MirroredFile.mirror_id == mirror.id)).all()
    return {"prefix": mirror.prefix, "allow_http": mirror.allow_http, "port": mirror.port,
            "ca_bundle": mirror.ca_bundle, "created_at": mirror.created_at.isoformat(),
            "files": len(files), "bytes": sum(f.size for f in files)}


def mirror_for(session: Session, name: str) -> Mirror | None:
    """The mirror whose prefix covers `name` (the longest prefix wins), or None."""
    best: Mirror | None = None
    for mirror in session.scalars(select(Mirror)):
        if name == mirror.prefix or name.startswith(mirror.prefix + "/"):
            if best is None or len(mirror.prefix) > len(best.prefix):
                best = mirror
    return best


def blob_key(digest: str) -> str:
    """Mirrored ACIs live apart from the registry's own blobs (its gc never sees them)."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"mirror/{algorithm}/{hexdigest[:2]}/{hexdigest}"


# -- fetching and serving ---------------------------------------------------------------------
@dataclass(frozen=True)
class Upstream:
    mirror: Mirror

    def session(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        http.headers["User-Agent"] = "pyrkt-registry-mirror"
        if self.mirror.ca_bundle:
            http.verify = self.mirror.ca_bundle
        return http

    def discovery_options(self) -> dict[str, object]:
        return {"allow_http": self.mirror.allow_http, "port": self.mirror.port,
                "timeout": UPSTREAM_TIMEOUT}


def _fresh_for(response: requests.Response) -> timedelta:
    control = response.headers.get("Cache-Control", "")
    if "no-store" in control or "no-cache" in control:
        return timedelta(0)
    found = _MAX_AGE.search(control)
    return timedelta(seconds=int(found.group(1))) if found else DEFAULT_FRESH


def _row(session: Session, mirror: Mirror | int, path: str) -> MirroredFile | None:
    mirror_id = mirror if isinstance(mirror, int) else mirror.id
    return session.scalar(select(MirroredFile).where(MirroredFile.mirror_id == mirror_id,
                                                     MirroredFile.path == path))


def serve_image_file(session: Session, storage: BlobStorage, mirror: Mirror, name: str,
                     version: str, os: str, arch: str, ext: str) -> WsgiResponse:
    """The ACI or its signature for a mirrored name, from the cache or fetched upstream now."""
    path = f"aci/{name}/{version}/{os}/{arch}/{ext}"
    row = _row(session, mirror, path)
    now = datetime.now(UTC)
    if row is None or aware(row.fresh_until) <= now:
        try:
            row = _refresh_image(session, storage, mirror, path, row, name, version, os, arch, ext)
        except (requests.RequestException, DiscoveryError, UpstreamUnavailable) as error:
            if row is None:
                raise UpstreamUnavailable(f"the upstream of {mirror.prefix} cannot be reached "
                                          f"and {name}:{version} is not cached: {error}") from None
            log.warning("serving %s from the mirror's cache: upstream failed: %s", path, error)
    remaining = max(0, int((aware(row.fresh_until) - now).total_seconds()))
    cache_control = f"public, max-age={remaining}"
    if row.content is not None:
        response = Response(row.content, mimetype="application/pgp-signature")
        response.set_etag(hashlib.sha256(row.content.encode()).hexdigest())
        response.headers["Cache-Control"] = cache_control
        return response.make_conditional(request)
    assert row.digest is not None
    try:
        return blob_response(blob_key(row.digest), etag=row.digest, size=row.size,
                             mimetype="application/octet-stream",
                             modified=aware(row.fetched_at), cache_control=cache_control)
    except HTTPNotFound:
        raise NotFound(f"the mirrored copy of {name}:{version} is missing from storage",
                       code="mirror-blob-missing") from None


def _refresh_image(session: Session, storage: BlobStorage, mirror: Mirror, path: str,
                   row: MirroredFile | None, name: str, version: str, os: str, arch: str,
                   ext: str) -> MirroredFile:
    upstream = Upstream(mirror)
    http = upstream.session()
    try:
        app = AppRef(name, {"version": version, "os": os, "arch": arch})
        found = discover_endpoints(app, session=http, **upstream.discovery_options())  # type: ignore[arg-type]
        last_error = "no endpoint"
        for endpoint in found.endpoints:
            url = endpoint.aci if ext == "aci" else endpoint.asc
            headers = {"If-None-Match": row.etag} if row is not None and row.etag and \
                row.upstream_url == url else {}
            response = http.get(url, stream=True, timeout=UPSTREAM_TIMEOUT, headers=headers)
            with response:
                if response.status_code == 304 and row is not None:
                    row.fresh_until = datetime.now(UTC) + _fresh_for(response)
                    session.commit()
                    return row
                if response.status_code == 404:
                    last_error = f"{url}: HTTP 404"
                    continue
                if response.status_code != 200:
                    raise UpstreamUnavailable(f"{url} answered HTTP {response.status_code}")
                return _store(session, storage, mirror, path, row, url, response, ext)
        if row is not None:
            raise UpstreamUnavailable(last_error)
        raise NotFound(f"upstream has no {name}:{version} for {os}/{arch} ({last_error})",
                       code="version-not-found")
    finally:
        http.close()


def _store(session: Session, storage: BlobStorage, mirror: Mirror, path: str,
           row: MirroredFile | None, url: str, response: requests.Response,
           ext: str) -> MirroredFile:
    fresh = datetime.now(UTC) + _fresh_for(response)
    etag = response.headers.get("ETag")
    if ext == "aci.asc":
        body = response.raw.read(MAX_SMALL_FILE + 1, decode_content=True)
        if len(body) > MAX_SMALL_FILE:
            raise UpstreamUnavailable(f"{url}: a signature larger than {MAX_SMALL_FILE} bytes")
        values = {"content": body.decode("ascii", errors="replace"), "digest": None,
                  "size": len(body)}
    else:
        digest = hashlib.sha256()
        with storage.upload() as upload:
            for chunk in response.iter_content(CHUNK):
                digest.update(chunk)
                upload.write(chunk)
            name = "sha256:" + digest.hexdigest()
            size = upload.size
            storage.commit(upload, blob_key(name))
        values = {"content": None, "digest": name, "size": size}
    return _save(session, row, MirroredFile(mirror_id=mirror.id, path=path, upstream_url=url,
                                            etag=etag, fresh_until=fresh, **values))


def _save(session: Session, row: MirroredFile | None, fresh: MirroredFile) -> MirroredFile:
    """Store a newly fetched copy: a new row, or the existing row updated in place."""
    if row is None:
        session.add(fresh)
        try:
            session.commit()
        except IntegrityError:
            # A concurrent request stored it first: serve that one.
            session.rollback()
            existing = _row(session, fresh.mirror_id, fresh.path)
            assert existing is not None
            return existing
        return fresh
    for name in ("upstream_url", "etag", "fresh_until", "digest", "content", "size"):
        setattr(row, name, getattr(fresh, name))
    row.fetched_at = datetime.now(UTC)
    session.commit()
    return row


def serve_pubkeys(session: Session, mirror: Mirror, prefix: str) -> WsgiResponse:
    """The upstream's public keys for a mirrored prefix (discovered there, kept, refreshed)."""
    path = f"keys/{prefix}"
    row = _row(session, mirror, path)
    now = datetime.now(UTC)
    if row is None or aware(row.fresh_until) <= now:
        try:
            row = _refresh_keys(session, mirror, path, prefix, row)
        except (requests.RequestException, DiscoveryError, UpstreamUnavailable) as error:
            if row is None:
                raise UpstreamUnavailable(f"the upstream of {mirror.prefix} cannot be reached "
                                          f"for the keys of {prefix}: {error}") from None
            log.warning("serving keys of %s from the mirror's cache: %s", prefix, error)
    assert row.content is not None
    response = Response(row.content, mimetype="application/pgp-keys")
    response.set_etag(hashlib.sha256(row.content.encode()).hexdigest())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response.make_conditional(request)


def _refresh_keys(session: Session, mirror: Mirror, path: str, prefix: str,
                  row: MirroredFile | None) -> MirroredFile:
    upstream = Upstream(mirror)
    http = upstream.session()
    try:
        found = discover_pubkeys(AppRef(prefix), session=http, **upstream.discovery_options())  # type: ignore[arg-type]
        blocks: list[str] = []
        for url in found.pubkeys:
            response = http.get(url, timeout=UPSTREAM_TIMEOUT)
            if response.status_code != 200:
                raise UpstreamUnavailable(f"{url} answered HTTP {response.status_code}")
            if len(response.content) > MAX_SMALL_FILE:
                raise UpstreamUnavailable(f"{url}: a key ring larger than {MAX_SMALL_FILE} bytes")
            blocks.append(response.text)
        if not blocks:
            raise UpstreamUnavailable(f"upstream publishes no keys for {prefix}")
        content = "\n".join(blocks)
        return _save(session, row, MirroredFile(
            mirror_id=mirror.id, path=path, upstream_url=found.pubkeys[0], etag=None,
            digest=None, content=content, size=len(content),
            fresh_until=datetime.now(UTC) + DEFAULT_FRESH))
    finally:
        http.close()
