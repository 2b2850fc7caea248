"""Browsing: the home page, path listings and repository pages (served on the discovery URL),
and the registry's signing keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import abort, redirect, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from registry.discovery import pubkeys_url
from registry.server.auth import reader_actor
from registry.server.context import config, db, storage
from registry.server.markdown import render_markdown
from registry.server.models import KeyStatus, Repository, Role, SigningKey, Tag
from registry.server.oci.listing import VersionRow, all_versions
from registry.server.oci.models import OciTag
from registry.server.oci.names import oci_name
from registry.server.services import Actor, keys, pulls, repositories
from registry.server.services.access import has_role
from registry.server.services.repositories import LATEST
from registry.server.tls.localca import served_local_ca

from .blueprint import bp
from .chart import pulls_chart
from .commands import ClientCommand, fetch_command, trust_command, version_commands
from .sessions import ui_actor
from .urls import host_domain


@dataclass(frozen=True)
class RepositorySummary:
    repository: Repository
    versions: int
    newest: str | None


@dataclass(frozen=True)
class KeyLabel:
    """How a signature's key is described in the versions table."""

    fingerprint: str
    owner: str  # "registry" or "repository"
    status: str


def page_actor() -> Actor:
    """Scripts read pages with tokens (the server's reader rule); browsers with the UI session,
    whose checks (password-bound sessions) live in .sessions."""
    return reader_actor() if "Authorization" in request.headers else ui_actor()


def name_page(name: str, discovery_tags: str) -> str:
    """The human page on a discovery URL: a readable repository, else the readable
    repositories under that path (the home page for the domain root)."""
    actor = page_actor()
    repository = repositories.visible_or_none(db(), actor, name)
    if repository is not None:
        return repository_page(repository, discovery_tags)
    return listing_page(name, discovery_tags, prefix="" if "/" not in name else name)


def listing_page(name: str, discovery_tags: str, *, prefix: str) -> str:
    search = request.args.get("q", "").strip()
    found = repositories.list_repositories(db(), page_actor(), search=search, prefix=prefix)
    if not found and prefix:
        # Same 404 whether private repositories exist under this path or not.
        abort(404)
    return render_template("ui/home.html", name=name, is_root=not prefix, search=search,
                           summaries=summarise(found), discovery_tags=discovery_tags,
                           domains=config().domains)


def summarise(found: Sequence[Repository]) -> list[RepositorySummary]:
    """Per repository: how many versions (native ones and OCI tags not converted yet alike)
    and what `latest` serves."""
    if not found:
        return []
    ids = [r.id for r in found]
    session = db()
    versions: dict[int, set[str]] = {}
    for repo_id, version in session.execute(
            select(Tag.repository_id, Tag.version).where(Tag.repository_id.in_(ids)).distinct()):
        versions.setdefault(repo_id, set()).add(version)
    for repo_id, version in session.execute(
            select(OciTag.repository_id, OciTag.name).where(OciTag.repository_id.in_(ids))):
        versions.setdefault(repo_id, set()).add(version)
    return [RepositorySummary(r, len(versions.get(r.id, ())),
                              _newest_version(r) if versions.get(r.id) else None) for r in found]


def _newest_version(repository: Repository) -> str | None:
    return repositories.latest_version(db(), repository)


@dataclass(frozen=True)
class VersionView:
    """One row of the versions table: the version, its pulls and the commands for it."""

    row: VersionRow
    pulls: int
    commands: list[ClientCommand]
    key: str  # unique per row: element ids of its copy buttons


def repository_page(repository: Repository, discovery_tags: str) -> str:
    session = db()
    actor = page_actor()
    tags = list(repositories.list_tags(session, actor, repository.name))
    latest_ids = latest_tag_ids(repository, tags)
    newest_version = next((t.version for t in tags if t.id in latest_ids), None)
    base_url = config().base_url
    domains = config().domains
    served_ca = served_local_ca(config().data_dir, config().tls.cert)
    ca = str(served_ca) if served_ca else None
    totals = pulls.version_totals(session, repository)
    rows = all_versions(session, storage(), repository, tags)
    views = [VersionView(row, totals.get(row.version, 0),
                         version_commands(base_url, repository.name, row.version, row.os, row.arch,
                                          oci_name(repository.name, domains)
                                          if row.oci_tagged else None, ca),
                         key=f"v{index}")
             for index, row in enumerate(rows)]
    days = pulls.daily(session, repository)
    return render_template(
        "ui/repository.html", name=repository.name, repository=repository, tags=tags,
        views=views, latest_ids=latest_ids, key_labels=key_labels(repository),
        discovery_tags=discovery_tags, base_url=base_url,
        description_html=render_markdown(repository.description or ""),
        trust_command=trust_command(base_url, repository.name, ca),
        fetch_command=fetch_command(base_url, repository.name, newest_version, ca_bundle=ca),
        total_pulls=sum(totals.values()), recent_pulls=sum(n for _, n in days),
        chart=pulls_chart(days, title=f"Pulls of {repository.name} per day, last {len(days)} days"),
        # Controls follow the UI session only: the forms they lead to accept nothing else.
        can_write=has_role(session, ui_actor(), repository, Role.WRITE),
        can_admin=has_role(session, ui_actor(), repository, Role.ADMIN),
        versions=sorted({t.version for t in tags}),
    )


def latest_tag_ids(repository: Repository, tags: Sequence[Tag]) -> set[int]:
    """Which rows `latest` serves, per os/arch, by the same rule the downloads use."""
    found = set()
    for os_name, arch in {(t.os, t.arch) for t in tags}:
        tag = repositories.resolve_tag(db(), repository, LATEST, os_name, arch)
        if tag is not None:
            found.add(tag.id)
    return found


def key_labels(repository: Repository) -> dict[str, KeyLabel]:
    session = db()
    rows: list[SigningKey] = [*keys.server_keys(session), *keys.repository_keys(session, repository)]
    return {row.fingerprint: KeyLabel(row.fingerprint,
                                      "repository" if row.repository_id else "registry",
                                      row.status.value) for row in rows}


@bp.get("/")
def home() -> Response | str:
    """Every readable repository; on a hosted domain its root page (with discovery tags)."""
    if host_domain():
        return redirect("/")
    return listing_page("", "", prefix="")


@bp.get("/keys")
def signing_keys() -> str:
    rows = keys.server_keys(db())
    return render_template("ui/keys.html", keys=rows, active=KeyStatus.ACTIVE,
                           pubkeys_url=pubkeys_url(config().base_url))
