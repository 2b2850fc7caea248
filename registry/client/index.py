"""The image store's SQLite index: images (ID, name, labels, times, size) and remotes (HTTP cache).

One short-lived connection per operation, WAL mode and a generous busy timeout, so several
`pyrkt` processes can use one store at once. The schema is versioned with `PRAGMA user_version`.
"""

from __future__ import annotations

import _sqlite3  # sqlite3's C module: see below
import _thread  # the thread ident alone: threading costs every `pyrkt` command ~1 ms
import os
import time

from registry import jsontext
from registry.records import record

# The package `sqlite3` is its C module `_sqlite3` (every name used here is the C module's)
# plus the registration of datetime adapters, which loads datetime and collections.abc (~1 ms
# of every `pyrkt run`) for conversions this index never asks for: its times are floats.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from types import TracebackType

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id            TEXT PRIMARY KEY,      -- sha512-<128 hex>
    name          TEXT NOT NULL,
    labels        TEXT NOT NULL,         -- JSON object name -> value
    manifest      BLOB NOT NULL,         -- the manifest exactly as in the archive
    size          INTEGER NOT NULL,      -- bytes of the stored ACI file
    compression   TEXT NOT NULL,
    import_time   REAL NOT NULL,
    last_used     REAL NOT NULL,         -- the import; later uses: the store's used/ stamps
    has_signature INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_name ON images(name);
CREATE TABLE IF NOT EXISTS remotes (
    url           TEXT PRIMARY KEY,      -- where the ACI was downloaded from
    signature_url TEXT,
    etag          TEXT,
    max_age       INTEGER NOT NULL DEFAULT 0,
    download_time REAL NOT NULL,
    image_id      TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
"""


@record(frozen=True)
class Remote:
    """Where an image came from, and what HTTP said about caching it."""

    url: str
    signature_url: str | None = None
    etag: str | None = None
    max_age: int = 0
    download_time: float = 0.0
    image_id: str = ""

    def fresh(self, now: float | None = None) -> bool:
        """Whether Cache-Control max-age still covers this download."""
        return self.max_age > 0 and (now or time.time()) < self.download_time + self.max_age


def _retry_locked(action: Callable[[], object], attempts: int = 100) -> None:
    """Switching to WAL needs a moment alone with the file; another process creating the store
    at the same time can make SQLite answer "database is locked" at once, without waiting."""
    for attempt in range(attempts):
        try:
            action()
            return
        except _sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class _Transaction:
    """`with index.connect() as db:` one BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception
    (a class, not contextlib's decorator: contextlib is not otherwise on the start path)."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


class Index:
    """The index of one store. One connection serves every operation of the process (each
    operation is a transaction of its own): opening a WAL database costs a few system calls
    and writes to its shared-memory file, and a run of `pyrkt run` asks the index five or six
    questions. A forked child or another thread opens a connection of its own."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db: sqlite3.Connection | None = None
        self._owner: tuple[int, int] | None = None
        self._durable = True
        db = self._connection()
        _retry_locked(lambda: db.execute("PRAGMA journal_mode = WAL"))
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            # CREATE ... IF NOT EXISTS: harmless when two processes create the store at once
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} "
                             f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _connection(self) -> sqlite3.Connection:
        owner = (os.getpid(), _thread.get_ident())
        if self._db is None or self._owner != owner:
            # a connection is not shared across fork or threads: this one is the caller's own
            db = _sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                  check_same_thread=False)
            db.row_factory = _sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            self._db, self._owner, self._durable = db, owner, True
        return self._db

    def close(self) -> None:
        """Close this process's connection (the next operation opens one again)."""
        if self._db is not None and self._owner == (os.getpid(), _thread.get_ident()):
            self._db.close()
        self._db = self._owner = None

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """The rows of one SELECT: a statement is a consistent snapshot of its own (WAL), so a
        read takes no write lock and needs no BEGIN/COMMIT around it."""
        return self._connection().execute(sql, params).fetchall()

    def connect(self, *, durable: bool = True) -> _Transaction:
        """The connection, its block one transaction (committed on success). `durable=False`:
        the commit is not synced to disk (WAL's synchronous=NORMAL: after a power cut the
        change may be lost, the database is never damaged), for what is only a hint."""
        db = self._connection()
        if durable != self._durable:
            db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        return _Transaction(db)

    # images ----------------------------------------------------------------------------------

    def add_image(self, *, image_id: str, name: str, labels: dict[str, str], manifest: bytes,
                  size: int, compression: str, has_signature: bool) -> bool:
        """Insert an image row; False when it was already there (a concurrent import won)."""
        now = time.time()
        with self.connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO images (id, name, labels, manifest, size, compression,"
                " import_time, last_used, has_signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, name, jsontext.dumps(labels, sort_keys=True), manifest, size, compression,
                 now, now, int(has_signature)))
            if cursor.rowcount == 0 and has_signature:
                db.execute("UPDATE images SET has_signature = 1 WHERE id = ?", (image_id,))
            return cursor.rowcount == 1

    def image_rows(self, where: str = "", params: tuple = ()) -> list[sqlite3.Row]:
        return self.query(f"SELECT * FROM images {where}", params)

    def rows_with_prefix(self, prefix: str) -> list[sqlite3.Row]:
        """The rows whose ID starts with `prefix` (one query for `get`: the row and whether
        the prefix is ambiguous)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self.query("SELECT * FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))

    def remove_image(self, image_id: str) -> bool:
        with self.connect() as db:
            return db.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount == 1

    # remotes ---------------------------------------------------------------------------------

    def remote(self, url: str) -> Remote | None:
        rows = self.query("SELECT * FROM remotes WHERE url = ?", (url,))
        if not rows:
            return None
        row = rows[0]
        return Remote(row["url"], row["signature_url"], row["etag"], row["max_age"],
                      row["download_time"], row["image_id"])

    def save_remote(self, remote: Remote) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO remotes (url, signature_url, etag, max_age, download_time, image_id)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET"
                " signature_url = excluded.signature_url, etag = excluded.etag,"
                " max_age = excluded.max_age, download_time = excluded.download_time,"
                " image_id = excluded.image_id",
                (remote.url, remote.signature_url, remote.etag, remote.max_age,
                 remote.download_time or time.time(), remote.image_id))
