"""Signing keys: the registry's own (which sign unsigned uploads) and keys owners register.

The registry signs with its newest active key. Rotating makes a new active key and retires
the old ones; retired keys stay published so signatures they made keep verifying.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.server.models import KeyStatus, Repository, Role, Signature, SigningKey, utcnow
from registry.server.storage import BlobStorage, blob_key
from registry.signing import (
    PublicKey,
    SecretKey,
    SigningError,
    export_public_keys,
    generate_key,
    load_secret_key,
    old_client_problems,
    read_public_keys,
    sign_detached,
)

from . import audit
from .access import repository_with_role
from .actor import Actor
from .errors import BadRequest, Conflict, Forbidden, NotFound

# Loaded secret keys by fingerprint: parsing an RSA 4096 key per upload is wasted work.
_SECRET_CACHE: dict[str, SecretKey] = {}


def server_keys(session: Session) -> Sequence[SigningKey]:
    """The registry's own keys, active first, newest first."""
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.repository_id.is_(None))
        .order_by(SigningKey.status, SigningKey.created_at.desc(), SigningKey.id.desc())
    ).all()


def repository_keys(session: Session, repository: Repository) -> Sequence[SigningKey]:
    return session.scalars(
        select(SigningKey).where(SigningKey.repository_id == repository.id).order_by(SigningKey.id)
    ).all()


def active_server_key(session: Session) -> SecretKey:
    """The key the registry signs with: its newest active one."""
    row = session.scalar(
        select(SigningKey)
        .where(SigningKey.repository_id.is_(None), SigningKey.status == KeyStatus.ACTIVE,
               SigningKey.armored_secret.is_not(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        .limit(1)
    )
    if row is None or row.armored_secret is None:
        raise Conflict("the registry has no active signing key: run `pyrkt-registry key generate`",
                       code="no-signing-key")
    key = _SECRET_CACHE.get(row.fingerprint)
    if key is None:
        key = _SECRET_CACHE[row.fingerprint] = load_secret_key(row.armored_secret)
    return key


def ensure_server_key(
    session: Session, actor: Actor, *, user_id: str, key_file: Path | None = None
) -> SigningKey | None:
    """Make sure an active server key exists (imported from `key_file`, else generated).

    Returns the key it added, or None when one was already there.
    """
    existing = session.scalar(select(SigningKey.id).where(
        SigningKey.repository_id.is_(None), SigningKey.status == KeyStatus.ACTIVE))
    if existing is not None:
        return None
    if key_file is not None:
        return import_server_key(session, actor, key_file.read_text())
    return generate_server_key(session, actor, user_id=user_id)


def generate_server_key(session: Session, actor: Actor, *, user_id: str) -> SigningKey:
    """A new RSA 4096 key that becomes the active signer (older active keys stay active)."""
    _require_site_admin(actor)
    return _add_server_key(session, actor, generate_key(user_id), "key.generate")


def import_server_key(session: Session, actor: Actor, armored_secret: str) -> SigningKey:
    _require_site_admin(actor)
    try:
        secret = load_secret_key(armored_secret)
    except SigningError as error:
        raise BadRequest(f"cannot import signing key: {error}", code="bad-key") from error
    row = session.scalar(select(SigningKey).where(SigningKey.fingerprint == secret.fingerprint))
    if row is not None:
        return row
    return _add_server_key(session, actor, secret, "key.import")


def rotate_server_key(session: Session, actor: Actor, *, user_id: str) -> SigningKey:
    """A new active key; every other server key is retired (and stays published)."""
    _require_site_admin(actor)
    new_key = generate_key(user_id)
    for row in server_keys(session):
        if row.status == KeyStatus.ACTIVE:
            row.status, row.retired_at = KeyStatus.RETIRED, utcnow()
    return _add_server_key(session, actor, new_key, "key.rotate")


def retire_key(session: Session, actor: Actor, fingerprint: str) -> SigningKey:
    """Stop signing with a server key; refused for the last active one (uploads need a signer)."""
    _require_site_admin(actor)
    row = _server_key(session, fingerprint)
    if row.status == KeyStatus.RETIRED:
        return row
    others = [k for k in server_keys(session) if k.status == KeyStatus.ACTIVE and k.id != row.id]
    if not others:
        raise Conflict("this is the only active signing key: rotate instead of retiring it",
                       code="last-active-key")
    row.status, row.retired_at = KeyStatus.RETIRED, utcnow()
    audit.record(session, actor, "key.retire", row.fingerprint)
    session.commit()
    return row


def register_repository_key(
    session: Session, actor: Actor, name: str, armored_public: str | bytes
) -> list[SigningKey]:
    """Add the owner's public key(s) for a repository; uploads may then carry their signatures."""
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    try:
        keys = read_public_keys(armored_public)
    except SigningError as error:
        raise BadRequest(f"cannot register key: {error}", code="bad-key") from error
    added: list[SigningKey] = []
    for key in keys:
        row = session.scalar(select(SigningKey).where(SigningKey.fingerprint == key.fingerprint))
        if row is not None:
            if row.repository_id != repository.id:
                raise Conflict(f"key {key.fingerprint} is already registered elsewhere",
                               code="key-exists")
            continue
        row = SigningKey(fingerprint=key.fingerprint, user_ids="\n".join(key.user_ids),
                         armored_public=key.armored(), repository_id=repository.id)
        session.add(row)
        added.append(row)
        audit.record(session, actor, "key.register", name, fingerprint=key.fingerprint)
    session.commit()
    return added


def remove_repository_key(session: Session, actor: Actor, name: str, fingerprint: str) -> None:
    repository = repository_with_role(session, actor, name, Role.ADMIN)
    row = session.scalar(select(SigningKey).where(
        SigningKey.fingerprint == fingerprint.upper(), SigningKey.repository_id == repository.id))
    if row is None:
        raise NotFound(f"no key {fingerprint} registered for {name!r}", code="key-not-found")
    session.delete(row)
    audit.record(session, actor, "key.unregister", name, fingerprint=row.fingerprint)
    session.commit()


def old_client_report(row: SigningKey) -> list[str]:
    """Why rkt 1.x and appc clients of its time cannot read this key (empty: they can)."""
    try:
        return [problem for key in read_public_keys(row.armored_public)
                for problem in old_client_problems(key)]
    except SigningError as error:
        return [str(error)]


def signatures_by_unreadable_keys(session: Session) -> int:
    """How many served signatures were made by a registry key old clients cannot read."""
    unreadable = [row.fingerprint for row in server_keys(session) if old_client_report(row)]
    if not unreadable:
        return 0
    return session.scalar(select(func.count(Signature.id)).where(
        Signature.key_fingerprint.in_(unreadable))) or 0


def resign_images(session: Session, actor: Actor, storage: BlobStorage, *,
                  key_fingerprint: str | None = None) -> int:
    """Sign again, with the active key, the images the registry signed with other keys.

    By default only signatures by registry keys old clients cannot read are replaced (after a
    `key rotate` that fixed such a key); `key_fingerprint` picks one retired key instead.
    Owners' own signatures are never touched. Each image is streamed from storage into a
    temporary file and committed one by one, so an interruption leaves every image signed.
    """
    _require_site_admin(actor)
    active = active_server_key(session)
    if key_fingerprint is not None:
        wanted = [_server_key(session, key_fingerprint).fingerprint]
    else:
        wanted = [row.fingerprint for row in server_keys(session) if old_client_report(row)]
    wanted = [fpr for fpr in wanted if fpr != active.fingerprint]
    if not wanted:
        return 0
    rows = session.scalars(select(Signature).where(Signature.key_fingerprint.in_(wanted))
                           .order_by(Signature.id)).all()
    done = 0
    for row in rows:
        digest = row.image.digest
        with tempfile.NamedTemporaryFile(prefix="pyrkt-resign-") as copy:
            with storage.open(blob_key(digest)) as blob:
                shutil.copyfileobj(blob, copy, 1 << 20)
            copy.flush()
            armored = sign_detached(active, copy.name).decode("ascii")
        row.armored, row.key_fingerprint, row.created_at = armored, active.fingerprint, utcnow()
        audit.record(session, actor, "key.resign", digest, fingerprint=active.fingerprint)
        session.commit()
        done += 1
    return done


def verification_keys(session: Session, repository: Repository | None) -> list[PublicKey]:
    """Keys an uploaded signature may come from: the repository's own and the registry's."""
    rows = list(server_keys(session))
    if repository is not None and repository.id is not None:
        rows = list(repository_keys(session, repository)) + rows
    return [key for row in rows for key in read_public_keys(row.armored_public)]


def published_keys(session: Session, repository: Repository | None = None) -> str:
    """One armored block: the registry's keys (active and retired) plus the repository's.

    The newest active key comes first: rkt keeps a trusted key file whole but uses only the
    first key its OpenPGP can read from it (keys it cannot read, it skips).
    """
    rows = list(server_keys(session))
    if repository is not None:
        rows += list(repository_keys(session, repository))
    if not rows:
        raise NotFound("the registry has no signing keys yet", code="no-keys")
    return export_public_keys(k for row in rows for k in read_public_keys(row.armored_public))


def _add_server_key(session: Session, actor: Actor, secret: SecretKey, action: str) -> SigningKey:
    row = SigningKey(fingerprint=secret.fingerprint, user_ids="\n".join(secret.user_ids),
                     armored_public=secret.armored_public(), armored_secret=secret.armored_secret())
    session.add(row)
    audit.record(session, actor, action, secret.fingerprint)
    session.commit()
    _SECRET_CACHE[secret.fingerprint] = secret
    return row


def _server_key(session: Session, fingerprint: str) -> SigningKey:
    row = session.scalar(select(SigningKey).where(
        SigningKey.fingerprint == fingerprint.upper(), SigningKey.repository_id.is_(None)))
    if row is None:
        raise NotFound(f"no registry key with fingerprint {fingerprint}", code="key-not-found")
    return row


def _require_site_admin(actor: Actor) -> None:
    if not actor.is_site_admin:
        raise Forbidden("only an administrator may manage the registry's signing keys")
