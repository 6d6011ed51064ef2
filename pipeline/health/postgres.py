"""The history in PostgreSQL (psycopg 3): a connection that speaks the SQL the SQLite history is written in.

Reads: ``state.url`` (``postgresql://...``, passed in). Returns: a connection with SQLite's ``execute`` /
``executemany`` shape, so `database`, `readcache` and `history` keep one set of queries for both
backends. The queries are written in the dialect both accept (``ON CONFLICT ... DO UPDATE``, ``?``
placeholders, which this module turns into psycopg's ``%s``); the DDL is SQLite's with PostgreSQL's
types, and the schema version lives in a one-row ``schema_version`` table (SQLite keeps it in
``user_version``). Errors come back as ``sqlite3.OperationalError`` so the callers handle one type.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")
log = logging.getLogger("pipeline")


def is_postgres(url: str | None) -> bool:
    """Whether ``state.url`` names a PostgreSQL database."""
    return url is not None and url.startswith(SCHEMES)


_SECRET_PARAM = re.compile(r"(?i)([?&](?:password|passwd|pass|secret|token|sslpassword)=)[^&#]*")


def redacted(url: str) -> str:
    """The URL without its password (in the netloc or a ``?password=`` parameter), for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable netloc (a stray '['): show nothing of it
        return url.split("://", 1)[0] + "://***"
    query = _SECRET_PARAM.sub(r"\1***", "?" + parts.query)[1:] if parts.query else parts.query
    netloc = parts.netloc
    if "@" in netloc:
        user, _, where = netloc.rpartition("@")
        if ":" in user:  # the port is kept as written: a bad one must not turn this message into an error
            netloc = f"{user.split(':', 1)[0]}:***@{where}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def liveness(timeout_s: float) -> dict[str, Any]:
    """libpq settings that make a connection to a vanished server fail instead of hanging for ever.

    TCP keepalives notice a server that stopped answering an idle connection (probes after 5 s idle, every
    2 s, 3 missed: about 11 s); ``tcp_user_timeout`` fails a statement whose bytes the server's host never
    acknowledges (a half-open connection) after ``timeout_s`` (at least 5 s).
    """
    return {
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": int(max(5.0, timeout_s) * 1000),
        "connect_timeout": max(1, int(timeout_s)),
    }


def ddl(sqlite_schema: str) -> str:
    """SQLite's schema in PostgreSQL's types: 64-bit integers (mtime_ns), bytea, an explicit rowid.

    SQLite gives every table a hidden insertion-ordered ``rowid`` the run queries order by; PostgreSQL
    gets a real one on ``runs``.
    """
    text = re.sub(r"\bINTEGER\b", "BIGINT", sqlite_schema)
    text = re.sub(r"\bBLOB\b", "BYTEA", text)
    return text.replace(
        "CREATE TABLE IF NOT EXISTS runs (\n", "CREATE TABLE IF NOT EXISTS runs (\n    rowid BIGSERIAL,\n"
    )


BULK_ROWS = 1000  # rows from which an upsert goes through COPY (a temporary table costs a few statements)
# An INSERT with its columns named and nothing but placeholders, optionally ON CONFLICT (key) DO NOTHING or
# DO UPDATE SET c = excluded.c, ...: the shape whose COPY equals the rows run one by one.
_BULK_INSERT = re.compile(
    r"INSERT INTO (?P<table>\w+) \((?P<columns>\w+(?:, \w+)*)\) VALUES \(\?(?:, \?)*\)"
    r"(?P<conflict> ON CONFLICT \((?P<key>\w+)\) DO (?:NOTHING|UPDATE SET (?P<c>\w+) = excluded\.(?P=c)"
    r"(?:, (?P<d>\w+) = excluded\.(?P=d))*))?",
    re.DOTALL,
)


def _whole_rows(bulk: re.Match[str]) -> bool:
    """Whether a row that wins its conflict key stands whole: no conflict, DO NOTHING, or DO UPDATE of
    every column but the key. Only then is keeping one row per key what the rows one by one give."""
    conflict = bulk["conflict"] or ""
    if "DO UPDATE" not in conflict:
        return True
    updated = set(re.findall(r"(\w+) = excluded\.", conflict))
    return updated == set(bulk["columns"].split(", ")) - {bulk["key"]}


def _sql(query: str) -> str:
    # No query of the history holds a literal '?' or '%'; a placeholder is always a bare '?'.
    return query.replace("BEGIN IMMEDIATE", "BEGIN").replace("?", "%s")


class Cursor:
    """The rows of one statement, iterated or fetched like sqlite3's."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class Connection:
    """One psycopg connection in autocommit mode: transactions are the callers' own BEGIN ... COMMIT."""

    def __init__(self, url: str, timeout_s: float, *, read_only: bool) -> None:
        import psycopg  # here, not at the top: a run on the SQLite history never pays for importing it

        self._errors: type[psycopg.Error] = psycopg.Error
        self._url, self._timeout_s, self._read_only = url, timeout_s, read_only
        self._in_transaction = False
        try:
            self._connect()
        except self._errors as exc:
            raise sqlite3.OperationalError(str(exc).strip()) from exc

    def _connect(self) -> None:
        import psycopg

        self._conn = psycopg.connect(self._url, autocommit=True, **liveness(self._timeout_s))
        if self._read_only:
            self._conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    def execute(self, query: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            rows = self._execute(query, params)
        except self._errors as exc:
            # A connection the server dropped while it sat idle (a restart, a failover while the workers
            # checked) is made again, once, for a statement safe to repeat: one that begins a transaction
            # or only reads. Inside a transaction the error stands: the work so far is gone.
            repeatable = query.lstrip()[:6].upper() in ("BEGIN ", "BEGIN", "SELECT")
            if not (self._conn.broken and not self._in_transaction and repeatable):
                raise sqlite3.OperationalError(str(exc).strip()) from exc
            try:
                self._conn.close()
                self._connect()
                rows = self._execute(query, params)
            except self._errors as again:
                raise sqlite3.OperationalError(str(again).strip()) from again
        return Cursor([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows])

    def _execute(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        verb = query.lstrip()[:8].upper()
        if verb.startswith(("COMMIT", "ROLLBACK")):
            self._in_transaction = False
        # No parameters: the simple protocol, which also runs a script of several statements.
        cursor = self._conn.execute(_sql(query), list(params) or None)
        if verb.startswith("BEGIN"):
            self._in_transaction = True
        return cursor.fetchall() if cursor.description is not None else []

    def executemany(self, query: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [list(row) for row in rows]
        if not batch:
            return
        bulk = _BULK_INSERT.fullmatch(query.strip()) if len(batch) >= BULK_ROWS else None
        if bulk is not None and not _whole_rows(bulk):
            bulk = None  # a partial DO UPDATE: rows sharing a key would merge, which COPY cannot repeat
        try:
            if bulk is not None:
                self._copy_insert(bulk, batch)
                return
            with self._conn.cursor() as cursor:
                cursor.executemany(_sql(query), batch)
        except self._errors as exc:
            raise sqlite3.OperationalError(str(exc).strip()) from exc

    def _copy_insert(self, bulk: re.Match[str], batch: list[list[Any]]) -> None:
        """A large upsert as ``COPY`` into a temporary table and one ``INSERT ... SELECT``.

        Why: ``executemany`` sends one statement per row, and at 20,000 verdicts the client's per-row work
        and the server's per-statement work were the largest part of recording them. The result equals
        running the rows one after the other: where rows share the conflict key, the last one stands
        (``DO UPDATE`` sets only ``excluded`` values) or the first one does (``DO NOTHING``).
        """
        table, names, conflict = bulk["table"], bulk["columns"], bulk["conflict"] or ""
        order = "DESC" if "DO UPDATE" in conflict.upper() else "ASC"
        keep = f"DISTINCT ON ({bulk['key']}) " if bulk["key"] else ""
        by = f"{bulk['key']}, " if bulk["key"] else ""
        with self._conn.transaction(), self._conn.cursor() as cursor:  # a savepoint inside BEGIN ... COMMIT
            cursor.execute(
                f"CREATE TEMP TABLE _bulk_rows AS SELECT 0::bigint AS _row, {names} FROM {table} WITH NO DATA"
            )
            with cursor.copy(f"COPY _bulk_rows (_row, {names}) FROM STDIN") as copy:
                for number, row in enumerate(batch):
                    copy.write_row((number, *row))
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM"
                f" (SELECT {keep}* FROM _bulk_rows ORDER BY {by}_row {order}) AS bulk ORDER BY _row{conflict}"
            )
            cursor.execute("DROP TABLE _bulk_rows")

    def executescript(self, script: str) -> None:
        """Run a script of statements in one call (the DDL)."""
        self.execute(script)

    def close(self) -> None:
        self._conn.close()


def schema_version(db: Connection) -> int:
    """The version the database's schema is at (0 before the history was created in it)."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def set_schema_version(db: Connection, version: int) -> None:
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def columns(db: Connection, table: str) -> set[str]:
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ?",
        (table,),
    )
    return {row[0] for row in rows}


# The run lock of a shared history: a session advisory lock of this key (two int4: "pipe", "hist").
_RUN_KEY = (0x70697065, 0x68697374)


@contextmanager
def history_lock(url: str, timeout_s: float) -> Iterator[None]:
    """Hold, for the block, the run lock of the history at ``url``: one run at a time on a history that
    several machines share (the state folder's lock file keeps apart only the runs of one machine).

    A session advisory lock on a connection of its own, named after this host and pid so that a second
    run's message can say who holds it (``LockHeld``, at once); the server drops it when the holder's
    connection ends, a killed run included. A database that cannot be reached is left to the history's own
    open, which reports it (exit 6, or the engine's retries)."""
    import psycopg

    from pipeline.errors import LockHeld

    holder = f"pipeline on {socket.gethostname()}, pid {os.getpid()}"
    conn = None
    try:
        conn = psycopg.connect(url, autocommit=True, application_name=holder[:63], **liveness(timeout_s))
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", _RUN_KEY).fetchone()
        other = None if row and row[0] else _lock_holder(conn)
    except psycopg.Error as exc:
        log.debug("no run lock on the history (the database did not answer): %s", exc)
        if conn is not None:
            conn.close()
        yield
        return
    try:
        if other is not None:
            raise LockHeld(redacted(url), None, holder=other)
        yield
    finally:
        conn.close()  # the lock goes with the session


def _lock_holder(conn: psycopg.Connection[Any]) -> str:
    """The ``application_name`` of the session holding the run lock (a run names itself there)."""
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2"
        " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        _RUN_KEY,
    ).fetchone()
    return str(row[0]) if row and row[0] else "another run"
