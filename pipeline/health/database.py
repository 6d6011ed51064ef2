"""The SQLite file under the history: its schema, migrations, connections and transactions.

Reads: the database path (state.database, passed in). Returns: connections set up for WAL with a busy
timeout, read-only ones for pipeline report, and the transaction context every write goes through.
Only :mod: uses it; together they are the one database module family.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pipeline.errors import PathUnusable
from pipeline.health import postgres
from pipeline.text import iso

# The schema's version, kept in SQLite's user_version. 0: a file from before versions were kept; 1: the
# versioned schema of the first releases (missing tables were created on open); each later version is one
# entry of _MIGRATIONS, applied in order, once, in the transaction that records the new version.
_SCHEMA_VERSION = 3


_REMEDY = "make it writable by the user running the pipeline, or point state.dir (--state-dir) elsewhere"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    url TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    http_status INTEGER,
    final_url TEXT,
    redirects TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL DEFAULT '',
    first_failed_at TEXT,
    last_success_at TEXT,
    last_checked_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failure_kind TEXT,
    recent TEXT NOT NULL DEFAULT '[]',
    last_run_id TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    mode TEXT NOT NULL,
    exit_code INTEGER,
    outage TEXT,
    totals TEXT NOT NULL DEFAULT '{}',
    report BLOB  -- zlib-compressed JSON
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS archive (  -- archive copies of dead links (pipeline.health.archive)
    url TEXT PRIMARY KEY,
    archive_url TEXT,  -- NULL: the archive had no copy when asked
    snapshot_timestamp TEXT,
    checked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    final_url TEXT PRIMARY KEY,
    description TEXT,
    description_source TEXT,
    image_url TEXT,
    image_width INTEGER,
    image_height INTEGER,
    image_alive INTEGER,  -- NULL: not probed yet; 0: the probe failed; 1: alive (with its size if known)
    image_source TEXT,
    canonical TEXT,
    amp TEXT,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    read_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decided (
    path BLOB PRIMARY KEY,  -- an article that needed no change when last decided (os.fsencode: any name)
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    evidence TEXT NOT NULL  -- a digest of what that decision read (decide.fingerprint)
);
CREATE TABLE IF NOT EXISTS url_evidence (  -- what the decisions read of each URL (pipeline.write)
    url TEXT PRIMARY KEY,  -- normalized
    digest TEXT NOT NULL,  -- decide.url_digest when last computed
    changed INTEGER NOT NULL  -- the evidence generation in which that digest last changed
);
CREATE TABLE IF NOT EXISTS evidence_generation (  -- one row: the write pass of each run counts one up
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence_writes (  -- one row: rows written to links, pages, page_urls, archive
    id INTEGER PRIMARY KEY,
    count INTEGER NOT NULL  -- counted by triggers (SQLite; _COUNTED), so a writer outside a run counts too
);
CREATE TABLE IF NOT EXISTS files (  -- each article file's read-pass result, reused while it is unchanged
    path BLOB PRIMARY KEY,  -- os.fsencode of the path as discovered
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    settings TEXT NOT NULL,  -- a digest of the settings the entry was read with
    entry TEXT NOT NULL  -- compact JSON of its refs, sketches and revisit flag (pipeline.readpass)
);
CREATE TABLE IF NOT EXISTS page_urls (
    url TEXT PRIMARY KEY,  -- a URL as requested (normalized)
    final_url TEXT NOT NULL  -- the page it landed on, a key of pages
);
-- A share image's probe is stored on every page declaring it (record_share_probes): without this index
-- each probe scans every page, quadratic in the corpus (hours at 200,000 articles).
CREATE INDEX IF NOT EXISTS pages_image_url ON pages (image_url);
"""


# Columns added after the first release: (version that added it, table, column, declaration). A file of
# version 1 may already hold one (version 1 added columns without recording it), so each is added only
# when missing.
_MIGRATIONS = (
    (2, "runs", "kind", "TEXT NOT NULL DEFAULT 'complete'"),
    # What the URL digests of the last write pass were made from, when a quiet night made them (write.py)
    (3, "evidence_generation", "basis", "TEXT"),
)

# Every write to a table the evidence is read from counts one up in ``evidence_writes``: a night whose
# count is the one the last write pass saw (and whose corpus and settings are the same) may reuse that
# pass's URL digests without reading every stored page (pipeline.reuse). SQLite only: a PostgreSQL history
# counts nothing, and its nights always read the pages.
_COUNTED = (
    "".join(
        f"CREATE TRIGGER IF NOT EXISTS {table}_{op.lower()}_counted AFTER {op} ON {table}"
        " BEGIN UPDATE evidence_writes SET count = count + 1 WHERE id = 1; END;\n"
        for table in ("links", "pages", "page_urls", "archive")
        for op in ("INSERT", "UPDATE", "DELETE")
    )
    + "INSERT OR IGNORE INTO evidence_writes (id, count) VALUES (1, 0);\n"
)


def _unusable(path: Path, exc: Exception, doing: str) -> PathUnusable:
    """The one-line error for a history database or folder this process cannot use."""
    problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return PathUnusable(path, f"cannot {doing}: {problem}", _REMEDY)


def _connect_read_only(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A read-only connection, also to a database in a folder the user cannot write.

    ``mode=ro`` on a WAL database still creates ``-shm`` beside it; where it cannot, and no ``-wal`` holds
    unmerged commits (a run closes it empty, and an active writer would have one), the file alone is the
    whole history and is opened ``immutable``. With a ``-wal`` present that error stands.
    """
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            db.close()
            raise
    db.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Texts:
    """The stored text of a value (a time as ISO 8601, a tuple as a JSON array), made once per distinct
    value: a night's rows share their times, redirect lists and status lists, and 20,000 verdicts made
    60,000 such strings, a third of the time recording them took."""

    def __init__(self) -> None:
        self._made: dict[Any, str | None] = {}

    def __call__(self, value: datetime | tuple[str, ...] | None) -> str | None:
        # Equal times in two offsets are written apart: the offset is part of the key.
        key = (value, value.utcoffset()) if isinstance(value, datetime) else value
        if key not in self._made:
            self._made[key] = json.dumps(list(value)) if isinstance(value, tuple) else iso(value)
        return self._made[key]


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error: one write lock taken up front, never upgraded.

    A database that cannot be written (read-only file or folder, full disk) becomes ``PathUnusable``.
    """

    def __init__(self, db: sqlite3.Connection | postgres.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _unusable(self._path, exc, "write the history database") from exc

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                raise _unusable(self._path, error, "write the history database") from error
            return
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (on some errors)
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise _unusable(self._path, exc, "write the history database") from exc


def upsert(key: str, columns: tuple[str, ...]) -> str:
    """The ``ON CONFLICT`` clause replacing a row's other columns: SQLite and PostgreSQL both read it."""
    return f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns)


IN_CHUNK = 500  # values per IN (...) query, below SQLite's variable limit
ANY_CHUNK = 10_000  # values per = ANY(?) array on PostgreSQL


class Database:
    """One SQLite file, opened for writing (schema created, migrated, WAL) or read-only."""

    def __init__(
        self, path: Path, busy_timeout_ms: int = 10_000, *, read_only: bool = False, url: str | None = None
    ) -> None:
        self.path = path
        self._postgres = postgres.is_postgres(url)
        if url is not None and self._postgres:  # state.url: the shared PostgreSQL history
            self.path = Path(postgres.redacted(url))
            try:
                self._db: sqlite3.Connection | postgres.Connection = postgres.Connection(
                    url, busy_timeout_ms / 1000, read_only=read_only
                )
                if not read_only:
                    # Several processes opening a fresh database at once would race in CREATE TABLE IF
                    # NOT EXISTS (PostgreSQL fails one of them): one at a time, under an advisory lock.
                    self._db.execute("SELECT pg_advisory_lock(hashtext('pipeline.history.schema'))")
                    try:
                        self._migrate()
                    finally:
                        with contextlib.suppress(sqlite3.Error):  # closed when a newer schema was refused
                            self._db.execute("SELECT pg_advisory_unlock(hashtext('pipeline.history.schema'))")
                elif self._db.execute("SELECT to_regclass('runs')").fetchone() == (None,):
                    raise PathUnusable(  # reading only: no table is created for a dry run or `runs`
                        self.path,
                        "holds no pipeline history yet",
                        "run `pipeline refresh` once, or check state.url",
                    )
            except sqlite3.Error as exc:
                raise _unusable(self.path, exc, "open the history database") from exc
            return
        if read_only:  # a dry run, `runs`, `report`: no schema change, no journal switch, never blocked
            try:
                self._db = _connect_read_only(path, busy_timeout_ms)
            except sqlite3.Error as exc:
                raise _unusable(path, exc, "open the history database") from exc
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(path.parent, exc, "create the state folder") from exc
        try:
            self._db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise _unusable(path, exc, "write the history database") from exc

    @property
    def schema_version(self) -> int:
        """The version this file's schema is at (user_version)."""
        if isinstance(self._db, postgres.Connection):
            return postgres.schema_version(self._db)
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _columns(self, table: str) -> set[str]:
        if isinstance(self._db, postgres.Connection):
            return postgres.columns(self._db, table)
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _set_version(self) -> None:
        if isinstance(self._db, postgres.Connection):
            postgres.set_schema_version(self._db, _SCHEMA_VERSION)
        else:
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Upgrade the file in place to _SCHEMA_VERSION; refuse one written by a newer pipeline.

        The new columns and the version in one transaction: a run killed mid-upgrade leaves the file at
        its old version, and the next open upgrades it again.
        """
        found = self.schema_version
        if found > _SCHEMA_VERSION:
            self._db.close()
            raise PathUnusable(
                self.path,
                f"the history database is at schema version {found}, newer than this pipeline's"
                f" {_SCHEMA_VERSION}",
                "upgrade the pipeline, or point state.dir (--state-dir) at another history",
            )
        # Missing tables; idempotent, so safe outside the transaction.
        self._db.executescript(postgres.ddl(_SCHEMA) if self._postgres else _SCHEMA + _COUNTED)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._postgres:  # two coordinators upgrading at once: the second waits, then finds it done
                self._db.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")
            for version, table, column, declaration in _MIGRATIONS:
                if version > found and column not in self._columns(table):
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self._set_version()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (after the checkpoint ``checkpoint_aside`` started, if any)."""
        if self._aside is not None:
            self._aside.join()
            self._aside = None
        self._db.close()

    _aside: threading.Thread | None = None

    def checkpoint_aside(self) -> None:
        """Copy the write-ahead log into the file now, on a thread and a connection of its own, while the
        caller goes on (a run's report files); SQLite only.

        Why: the last connection's close does it otherwise (with its fsync), after everything else: about
        10 ms at the end of `pipeline bench --check-only`. A passive checkpoint blocks no writer (a later
        write simply goes to the log, which the close copies as before), and one that fails is the
        close's to do.
        """
        if self._postgres or self._aside is not None or str(self.path) == ":memory:":
            return

        def checkpoint() -> None:
            with contextlib.suppress(sqlite3.Error):
                db = sqlite3.connect(self.path, timeout=1, isolation_level=None)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    db.close()

        self._aside = threading.Thread(target=checkpoint, name="history-checkpoint", daemon=True)
        self._aside.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _rows_in(self, query: str, keys: Iterable[Any]) -> Iterator[Any]:
        """The rows of ``query`` for every key: its ``IN ({marks})`` filled, ``IN_CHUNK`` keys a statement."""
        wanted = list(dict.fromkeys(keys))
        if self._postgres:  # one array parameter: psycopg parsed 500 placeholders per statement in Python
            for start in range(0, len(wanted), ANY_CHUNK):
                yield from self._db.execute(
                    query.replace(" IN ({marks})", " = ANY(?)"), [wanted[start : start + ANY_CHUNK]]
                )
            return
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            yield from self._db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)
