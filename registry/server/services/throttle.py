"""Brute-force defence: growing delays per account and per client address.

Every password check (the UI's sign-in, HTTP Basic on the API and the OCI token endpoint, the
current-password field) first passes `begin_password_attempt`, BEFORE any scrypt work:

- an account or address whose delay is running is refused at once (`Throttled`, HTTP 429 with
  Retry-After), without hashing anything, so guessing costs the registry no CPU;
- otherwise the attempt is counted as a failure in advance, in one compare-and-swap UPDATE,
  so a burst of parallel guesses spread over several gunicorn workers (or hosts sharing the
  database) cannot slip in before the first failures are written; from the
  `free_attempts`-th consecutive failure on, each one starts a delay that doubles each time
  (`base_delay`, 2×, 4× … up to `max_delay`);
- `password_attempt_succeeded` undoes that: the account's count starts again at zero, the
  address's loses this attempt; `password_attempt_failed` writes an `auth.lockout` audit entry
  whenever a delay begins.

Wrong API tokens (cheap to check, so not pre-counted) count against the address through
`check_address`/`token_guess_failed`. Counts older than `window` are forgotten. The correct
password works again as soon as the delay has run out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.server.models import LoginThrottle, aware, utcnow

from . import audit
from .actor import Actor
from .errors import ServiceError

ACCOUNT = "account"
ADDRESS = "address"
_CAS_TRIES = 20


class Throttled(ServiceError):
    status = 429
    code = "too-many-attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-in attempts: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottlePolicy:
    free_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 900.0
    window: float = 3600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (0 while they are free)."""
        if failures < self.free_attempts:
            return 0.0
        exponent = min(failures - self.free_attempts, 40)
        return min(self.base_delay * 2.0**exponent, self.max_delay)


DEFAULT_POLICY = ThrottlePolicy()


@dataclass
class Attempt:
    """A password attempt counted in advance: (scope, key) -> the count it wrote."""

    address: str | None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)


def _keys(username: str | None, address: str | None) -> list[tuple[str, str]]:
    keys = []
    if username:
        # Names are case-sensitive for login but lower-case by rule; cut to the column size.
        keys.append((ACCOUNT, username[:255]))
    if address:
        keys.append((ADDRESS, address[:255]))
    return keys


def _ensure_rows(session: Session, keys: list[tuple[str, str]]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - SQLite or PostgreSQL only
        raise RuntimeError(f"login throttling does not support {dialect}")
    for scope, key in keys:
        # Both dialects' INSERT ... ON CONFLICT DO NOTHING (their Insert classes differ).
        row = {"scope": scope, "key": key, "failures": 0}
        if dialect == "postgresql":
            session.execute(postgresql_insert(LoginThrottle).values(**row)
                            .on_conflict_do_nothing(index_elements=["scope", "key"]))
        else:
            session.execute(sqlite_insert(LoginThrottle).values(**row)
                            .on_conflict_do_nothing(index_elements=["scope", "key"]))


def _where(scope: str, key: str):  # type: ignore[no-untyped-def]
    return (LoginThrottle.scope == scope) & (LoginThrottle.key == key)


def _remaining(blocked_until: datetime | None, now: datetime) -> int:
    if blocked_until is None:
        return 0
    left = (aware(blocked_until) - now).total_seconds()
    return math.ceil(left) if left > 0 else 0


def _raise_if_blocked(session: Session, keys: list[tuple[str, str]], now: datetime) -> None:
    longest = 0
    for scope, key in keys:
        blocked = session.scalar(select(LoginThrottle.blocked_until).where(_where(scope, key)))
        longest = max(longest, _remaining(blocked, now))
    if longest:
        session.rollback()
        raise Throttled(longest)


def begin_password_attempt(session: Session, username: str | None, address: str | None,
                           policy: ThrottlePolicy = DEFAULT_POLICY) -> Attempt:
    """Refuse (Throttled) or count this attempt as failed in advance; commits."""
    now = utcnow()
    keys = _keys(username, address)
    attempt = Attempt(address=address)
    _raise_if_blocked(session, keys, now)
    _ensure_rows(session, keys)
    window_start = now - timedelta(seconds=policy.window)
    for scope, key in keys:
        for _ in range(_CAS_TRIES):
            row = session.execute(select(LoginThrottle.failures, LoginThrottle.last_failure_at,
                                         LoginThrottle.blocked_until)
                                  .where(_where(scope, key))).one()
            remaining = _remaining(row.blocked_until, now)
            if remaining:
                session.commit()  # what was counted for the other key stays counted
                raise Throttled(remaining)
            recent = row.last_failure_at is not None and aware(row.last_failure_at) > window_start
            failures = (row.failures if recent else 0) + 1
            delay = policy.delay(failures)
            unchanged = (LoginThrottle.failures == row.failures) & (
                LoginThrottle.last_failure_at.is_(None) if row.last_failure_at is None
                else LoginThrottle.last_failure_at == row.last_failure_at)
            result = session.execute(
                update(LoginThrottle).where(_where(scope, key) & unchanged).values(
                    failures=failures, last_failure_at=now,
                    blocked_until=now + timedelta(seconds=delay) if delay else None))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                session.commit()
                attempt.counts[(scope, key)] = failures
                break
            session.rollback()  # another worker counted first: read again
        else:
            raise Throttled(1)
    return attempt


def password_attempt_succeeded(session: Session, attempt: Attempt) -> None:
    """The password was right: the account starts afresh, the address gets this one back."""
    for (scope, key), _count in attempt.counts.items():
        if scope == ACCOUNT:
            values = {"failures": 0, "blocked_until": None}
            session.execute(update(LoginThrottle).where(_where(scope, key)).values(**values))
        else:
            session.execute(update(LoginThrottle).where(_where(scope, key)).values(
                failures=LoginThrottle.failures - 1, blocked_until=None))
    session.commit()


def password_attempt_failed(session: Session, attempt: Attempt, actor: Actor,
                            policy: ThrottlePolicy = DEFAULT_POLICY) -> None:
    """The password was wrong (already counted): audit every delay that begins."""
    started = [(scope, key, count) for (scope, key), count in attempt.counts.items()
               if policy.delay(count)]
    for scope, key, count in started:
        audit.record(session, actor, "auth.lockout", key, scope=scope, failures=count,
                     delay_seconds=policy.delay(count))
    if started:
        session.commit()


def check_address(session: Session, address: str | None) -> None:
    """Refuse a client address whose delay is running (before looking a token up)."""
    if address:
        _raise_if_blocked(session, [(ADDRESS, address[:255])], utcnow())


def token_guess_failed(session: Session, address: str | None, actor: Actor,
                       policy: ThrottlePolicy = DEFAULT_POLICY) -> None:
    """An unknown or revoked token: count it against the address."""
    if not address:
        return
    attempt = begin_password_attempt(session, None, address, policy)
    password_attempt_failed(session, attempt, actor, policy)
