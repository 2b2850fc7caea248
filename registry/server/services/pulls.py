"""Pull counts: downloads per repository, version and day, and the 90 days a chart shows.

Counting must not slow a download, so a download only adds one to a dictionary in memory
(`PullCounter.count`: a lock and an increment); a thread of each worker process adds the
batch to `pull_counts` every few seconds with one upsert per (repository, version, day)
touched. A worker killed hard loses at most that interval's counts; a graceful stop
(gunicorn's SIGTERM, the end of a test) flushes them (atexit).

What counts as a pull: a GET of an ACI that sends it from its first byte (a resumed download,
`Range: bytes=N-` with N > 0, is the same pull), and a GET of an OCI manifest that is tagged
(by its tag, or by digest when a tag points at it: containerd resolves a tag with HEAD, then
GETs by digest; the platform manifests behind an index are not pulls of their own).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from registry.server.models import PullCount, Repository

log = logging.getLogger(__name__)

CHART_DAYS = 90
FLUSH_SECONDS = 5.0


def today() -> date:
    return datetime.now(UTC).date()


class PullCounter:
    """Counts in memory, written to the database in batches by a per-process thread."""

    def __init__(self, sessions: sessionmaker[Session], *, enabled: bool = True,
                 interval: float = FLUSH_SECONDS) -> None:
        self.sessions = sessions
        self.enabled = enabled
        self.interval = interval
        self._reset()
        atexit.register(self.flush)

    def _reset(self) -> None:
        # Also after a fork: the child starts with no pending counts and no thread of its own.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: Counter[tuple[int, str, date]] = Counter()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, repository_id: int, version: str) -> None:
        if not self.enabled:
            return
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            self._pending[(repository_id, version, today())] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pull-counter",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._wake.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the database may be away for a moment: keep counting
                log.exception("writing pull counts failed; they are kept for the next try")

    def flush(self) -> int:
        """Write the pending counts; returns how many (repository, version, day) rows moved."""
        if self._pid != os.getpid():
            return 0
        with self._lock:
            batch, self._pending = self._pending, Counter()
        if not batch:
            return 0
        try:
            with self.sessions() as session:
                add_counts(session, batch)
                session.commit()
        except BaseException:
            with self._lock:
                self._pending.update(batch)
            raise
        return len(batch)


def add_counts(session: Session, batch: Counter[tuple[int, str, date]]) -> None:
    table = cast(Table, PullCount.__table__)  # declared models map a Table
    dialect = session.get_bind().dialect.name
    for (repository_id, version, day), n in sorted(batch.items()):
        values = {"repository_id": repository_id, "version": version[:255], "day": day,
                  "count": n}
        if dialect in ("sqlite", "postgresql"):
            insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
            session.execute(insert.values(**values).on_conflict_do_update(
                index_elements=["repository_id", "version", "day"],
                set_={"count": table.c.count + insert.excluded.count}))
        else:  # pragma: no cover - the registry runs on SQLite and PostgreSQL
            row = session.scalar(select(PullCount).where(
                PullCount.repository_id == repository_id, PullCount.version == version,
                PullCount.day == day))
            if row is None:
                session.add(PullCount(**values))
            else:
                row.count += n


def version_totals(session: Session, repository: Repository) -> dict[str, int]:
    rows = session.execute(select(PullCount.version, func.sum(PullCount.count))
                           .where(PullCount.repository_id == repository.id)
                           .group_by(PullCount.version)).all()
    return {version: int(total) for version, total in rows}


def repository_total(session: Session, repository: Repository) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(PullCount.count), 0))
                              .where(PullCount.repository_id == repository.id)) or 0)


def daily(session: Session, repository: Repository, days: int = CHART_DAYS,
          until: date | None = None) -> list[tuple[date, int]]:
    """Pulls per day for the last `days` days up to `until` (today), zeros included."""
    last = until or today()
    first = last - timedelta(days=days - 1)
    rows = session.execute(select(PullCount.day, func.sum(PullCount.count))
                           .where(PullCount.repository_id == repository.id,
                                  PullCount.day >= first, PullCount.day <= last)
                           .group_by(PullCount.day)).all()
    found = {day: int(total) for day, total in rows}
    return [(first + timedelta(days=i), found.get(first + timedelta(days=i), 0))
            for i in range(days)]
