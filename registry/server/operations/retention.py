"""Retention: which versions a repository keeps, and the pass of gc that deletes the rest.

A policy keeps the `keep_last` newest versions and/or the versions younger than
`max_age_days`; with both rules a version goes only when it breaks both. `latest` (the owner's
mark, or the newest push) and protected versions are never deleted. A repository's own policy
replaces the registry-wide one (the row with no repository).

The pass runs online: each version is deleted in its own short transaction through
`services.repositories.delete_version` (the one rule for deleting a version), no lock is held
on uploads, and the images it leaves unreferenced are collected, blobs included, by the same
gc run. Every deletion and every policy change is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.server.models import Image, Repository, Role, Tag, aware
from registry.server.services import audit
from registry.server.services.access import repository_with_role
from registry.server.services.actor import Actor
from registry.server.services.errors import BadRequest, Forbidden, NotFound
from registry.server.services.repositories import delete_version, latest_version

from .models import ProtectedVersion, RetentionPolicy


@dataclass(frozen=True)
class Doomed:
    """A version a policy deletes, and why."""

    repository: str
    version: str
    pushed_at: datetime
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"repository": self.repository, "version": self.version,
                "pushed_at": self.pushed_at.isoformat(), "reason": self.reason}


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: list[Doomed] = field(default_factory=list)
    # Image digests that only the deleted versions referenced (gc removes them and their blobs).
    images_freed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "deleted": [d.to_dict() for d in self.deleted],
                "images_freed": self.images_freed}


def _check_rules(keep_last: int | None, max_age_days: int | None) -> None:
    if keep_last is not None and keep_last < 1:
        raise BadRequest("keep_last must be at least 1 (latest is always kept anyway)",
                         code="bad-policy")
    if max_age_days is not None and max_age_days < 1:
        raise BadRequest("max_age_days must be at least 1", code="bad-policy")


def _policy_row(session: Session, repository: Repository | None) -> RetentionPolicy | None:
    column = RetentionPolicy.repository_id
    condition = column.is_(None) if repository is None else column == repository.id
    return session.scalar(select(RetentionPolicy).where(condition))


def _repository_for_policy(session: Session, actor: Actor, name: str | None) -> Repository | None:
    if name is None:
        if not actor.is_site_admin:
            raise Forbidden("only an administrator sets the registry-wide retention policy",
                            code="no-role")
        return None
    return repository_with_role(session, actor, name, Role.ADMIN)


def get_policy(session: Session, actor: Actor, name: str | None) -> dict[str, object]:
    """The policy set on a repository (or registry-wide), and the one in effect for it."""
    repository = _repository_for_policy(session, actor, name)
    own = _policy_row(session, repository)
    effective = own if own is not None or repository is None else _policy_row(session, None)
    return {"repository": name, "own": _describe(own), "effective": _describe(effective),
            "protected": protected_versions(session, repository) if repository else []}


def _describe(policy: RetentionPolicy | None) -> dict[str, object] | None:
    if policy is None:
        return None
    return {"keep_last": policy.keep_last, "max_age_days": policy.max_age_days,
            "scope": "registry" if policy.repository_id is None else "repository"}


def set_policy(session: Session, actor: Actor, name: str | None, *, keep_last: int | None,
               max_age_days: int | None) -> RetentionPolicy | None:
    """Set (or, with neither rule, remove) a repository's or the registry-wide policy."""
    _check_rules(keep_last, max_age_days)
    repository = _repository_for_policy(session, actor, name)
    row = _policy_row(session, repository)
    if keep_last is None and max_age_days is None:
        if row is not None:
            session.delete(row)
        audit.record(session, actor, "retention.policy", name or "(registry)", removed=True)
        session.commit()
        return None
    if row is None:
        row = RetentionPolicy(repository_id=repository.id if repository else None)
        session.add(row)
    row.keep_last, row.max_age_days = keep_last, max_age_days
    row.updated_at = datetime.now(UTC)
    audit.record(session, actor, "retention.policy", name or "(registry)",
                 keep_last=keep_last, max_age_days=max_age_days)
    session.commit()
    return row


def protect(session: Session, actor: Actor, name: str, version: str, *, protected: bool = True) -> None:
    """Mark a version protected (retention never deletes it), or lift the mark."""
    repository = repository_with_role(session, actor, name, Role.WRITE)
    row = session.scalar(select(ProtectedVersion).where(
        ProtectedVersion.repository_id == repository.id, ProtectedVersion.version == version))
    if protected and row is None:
        if not session.scalar(select(func.count(Tag.id)).where(
                Tag.repository_id == repository.id, Tag.version == version)):
            raise NotFound(f"{name} has no version {version!r}", code="version-not-found")
        session.add(ProtectedVersion(repository_id=repository.id, version=version))
    elif not protected and row is not None:
        session.delete(row)
    audit.record(session, actor, "version.protect" if protected else "version.unprotect",
                 f"{name}:{version}")
    session.commit()


def repositories_with_policies(session: Session) -> list[str]:
    """Names of the repositories that have a policy of their own."""
    return list(session.scalars(
        select(Repository.name).join(RetentionPolicy, RetentionPolicy.repository_id == Repository.id)
        .order_by(Repository.name)))


def protected_versions(session: Session, repository: Repository) -> list[str]:
    return list(session.scalars(select(ProtectedVersion.version).where(
        ProtectedVersion.repository_id == repository.id).order_by(ProtectedVersion.version)))


def plan(session: Session, *, now: datetime | None = None) -> list[Doomed]:
    """Every version the policies in force would delete now, oldest first per repository."""
    now = now or datetime.now(UTC)
    registry_wide = _policy_row(session, None)
    own = {p.repository_id: p for p in session.scalars(
        select(RetentionPolicy).where(RetentionPolicy.repository_id.is_not(None)))}
    doomed: list[Doomed] = []
    for repository in session.scalars(select(Repository).order_by(Repository.name)):
        policy = own.get(repository.id, registry_wide)
        if policy is not None:
            doomed.extend(_doomed_in(session, repository, policy, now))
    return doomed


def _doomed_in(session: Session, repository: Repository, policy: RetentionPolicy,
               now: datetime) -> list[Doomed]:
    # One row per version: its newest push over every os/arch, newest version first.
    rows = session.execute(
        select(Tag.version, func.max(Tag.created_at).label("pushed"))
        .where(Tag.repository_id == repository.id)
        .group_by(Tag.version)
        .order_by(func.max(Tag.created_at).desc(), Tag.version.desc())
    ).all()
    keep = {latest_version(session, repository), *protected_versions(session, repository)}
    out: list[Doomed] = []
    for rank, (version, pushed) in enumerate(rows):
        if version in keep:
            continue
        pushed = aware(pushed)
        broken: list[bool] = []
        reasons: list[str] = []
        if policy.keep_last is not None:
            broken.append(rank >= policy.keep_last)
            reasons.append(f"not among the {policy.keep_last} newest")
        if policy.max_age_days is not None:
            broken.append(now - pushed > timedelta(days=policy.max_age_days))
            reasons.append(f"older than {policy.max_age_days} days")
        if broken and all(broken):
            out.append(Doomed(repository.name, version, pushed, " and ".join(reasons)))
    return list(reversed(out))


def apply_retention(session: Session, *, dry_run: bool, now: datetime | None = None) -> RetentionReport:
    """Delete (or, in a dry run, list) what the policies say; gc then frees the images."""
    report = RetentionReport(dry_run=dry_run)
    doomed = plan(session, now=now)
    if not doomed:
        return report
    by_version = {(d.repository, d.version) for d in doomed}
    # One pass over which versions use each image: those used only by doomed versions are freed.
    uses: dict[str, set[tuple[str, str]]] = {}
    for digest, name, version in session.execute(
            select(Image.digest, Repository.name, Tag.version)
            .join(Tag, Tag.image_pk == Image.id).join(Repository, Repository.id == Tag.repository_id)):
        uses.setdefault(digest, set()).add((name, version))
    report.images_freed = sorted(d for d, used_by in uses.items() if used_by <= by_version)
    actor = Actor.operator()
    for item in doomed:
        if not dry_run:
            try:
                delete_version(session, actor, item.repository, item.version)
            except NotFound:
                continue  # deleted meanwhile by someone else: nothing left to do
        report.deleted.append(item)
    if not dry_run:
        audit.record(session, actor, "retention.run", "", trigger="gc",
                     deleted=[f"{d.repository}:{d.version}" for d in report.deleted])
        session.commit()
    return report
