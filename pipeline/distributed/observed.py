"""The shared tables of one dispatch in the history database: what workers observed, shard by shard.

Reads: ``state.url`` (passed in). Returns: a :class:`Shared` connection. A dispatch (``job``: one call of
the check on the coordinator) is a row of ``dist_jobs`` while the coordinator waits for it; each observation
is one row keyed (job, url), inserted ``ON CONFLICT DO NOTHING`` so a URL recorded twice (a redelivered
task) counts once, and numbered as it arrives (``seq``) so the coordinator reads the rows back while the
workers still check; a worker's batch is one statement (its rows as one JSON parameter, the shard's counter
bumped by the rows really inserted, nothing while the dispatch is closed); a finished shard is one row of
``dist_shards`` with its per-host figures (or the error that stopped it). The coordinator deletes a job's
rows once it has read them.

The tables are created under a transaction-scoped advisory lock: many workers opening a fresh database at
once would otherwise race in ``CREATE TABLE IF NOT EXISTS`` (PostgreSQL can then fail one of them). Once
they exist, a connection only reads that they do: the DDL would lock the tables at every task's start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import psycopg

from pipeline.health.postgres import liveness

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dist_jobs (job TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL"
    " DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS dist_observations (job TEXT NOT NULL, url TEXT NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (job, url))",
    # The order rows arrived in, so the coordinator reads them back while the workers still check (a table
    # made by an earlier release gets the column: its rows are transient anyway).
    "ALTER TABLE dist_observations ADD COLUMN IF NOT EXISTS seq BIGSERIAL",
    "CREATE INDEX IF NOT EXISTS dist_observations_seq ON dist_observations (job, seq)",
    "CREATE TABLE IF NOT EXISTS dist_shards (job TEXT NOT NULL, shard INTEGER NOT NULL, host_stats TEXT"
    " NOT NULL, error TEXT, PRIMARY KEY (job, shard))",
    # Rows recorded per shard, so the coordinator's progress poll reads one row per shard, not every row.
    "CREATE TABLE IF NOT EXISTS dist_counts (job TEXT NOT NULL, shard INTEGER NOT NULL, recorded BIGINT"
    " NOT NULL, PRIMARY KEY (job, shard))",
)
# Whether the coordinator still waits for a dispatch: asked by a task before its work and by a worker
# answering the coordinator's setup check.
_JOB_OPEN = "SELECT 1 FROM dist_jobs WHERE job = %s"
# Data-modifying CTEs always run to completion: the rows, then the shard's counter bumped by the rows
# really inserted (a redelivered URL adds nothing), both only while the dispatch is open.
_RECORD = """
WITH open AS (SELECT EXISTS (SELECT 1 FROM dist_jobs WHERE job = %(job)s) AS yes),
added AS (
    INSERT INTO dist_observations (job, url, data)
    SELECT %(job)s, pair->>0, pair->>1 FROM json_array_elements(%(rows)s::json) AS item (pair)
    WHERE (SELECT yes FROM open)
    ON CONFLICT DO NOTHING RETURNING 1
),
counted AS (
    INSERT INTO dist_counts (job, shard, recorded)
    SELECT %(job)s, %(shard)s, count(*) FROM added HAVING count(*) > 0
    ON CONFLICT (job, shard) DO UPDATE SET recorded = dist_counts.recorded + excluded.recorded
)
SELECT yes FROM open
"""
_TABLES = ("dist_observations", "dist_shards", "dist_counts")
# Whether everything _SCHEMA makes is there already: one read, no lock. Each DDL statement of _SCHEMA locks
# its table even when there is nothing to do (``ALTER TABLE … ADD COLUMN IF NOT EXISTS`` takes an ACCESS
# EXCLUSIVE lock on ``dist_observations``), so a task starting would wait on every other worker's insert in
# flight, and hold up the next ones and the coordinator's reads meanwhile. A table, index or column added to
# _SCHEMA must be asked for here too, or a database made before it never gets it.
_SCHEMA_PRESENT = (
    "SELECT to_regclass('dist_jobs') IS NOT NULL AND to_regclass('dist_shards') IS NOT NULL"
    " AND to_regclass('dist_counts') IS NOT NULL AND to_regclass('dist_observations_seq') IS NOT NULL"
    " AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('dist_observations')"
    " AND attname = 'seq' AND NOT attisdropped)"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pipeline.distributed.schema'))"

DatabaseError = psycopg.OperationalError  # the database went away or cannot be reached: retry, then fail


class Shared:
    """One autocommit connection to the dispatch tables (created when missing)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        # Every statement of a dispatch is short (a poll, a batch of rows): one that runs longer than the
        # patience is cancelled by the server, so a stuck statement ends in a retry, not a hang.
        statement_ms = int(max(5.0, timeout_s) * 1000)
        self._conn = psycopg.connect(
            url, autocommit=True, options=f"-c statement_timeout={statement_ms}", **liveness(timeout_s)
        )
        try:
            present = self._conn.execute(_SCHEMA_PRESENT).fetchone()
            if not (present and present[0]):
                with self._conn.transaction():
                    self._conn.execute(_LOCK)
                    for statement in _SCHEMA:
                        self._conn.execute(statement)
        except BaseException:
            self._conn.close()  # a failed DDL must not leak the connection
            raise

    def close(self) -> None:
        self._conn.close()

    # ---- the coordinator -----------------------------------------------------------------------------
    def open_job(self, job: str) -> None:
        """Start a dispatch; rows of dispatches whose coordinator is gone (killed, failed) are removed."""
        with self._conn.transaction():
            self._conn.execute("DELETE FROM dist_jobs WHERE created_at < now() - interval '2 days'")
            for table in _TABLES:
                self._conn.execute(f"DELETE FROM {table} WHERE job NOT IN (SELECT job FROM dist_jobs)")
            self._conn.execute("INSERT INTO dist_jobs (job) VALUES (%s)", (job,))

    def progress(self, job: str) -> tuple[int, int]:
        """(URLs observed, shards finished) so far."""
        row = self._conn.execute(
            "SELECT (SELECT coalesce(sum(recorded), 0) FROM dist_counts WHERE job = %s),"
            " (SELECT count(*) FROM dist_shards WHERE job = %s)",
            (job, job),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def done_shards(self, job: str) -> set[int]:
        """The shards recorded as finished."""
        return {
            int(row[0]) for row in self._conn.execute("SELECT shard FROM dist_shards WHERE job = %s", (job,))
        }

    def shard_errors(self, job: str) -> list[tuple[int, str]]:
        """Shards a worker could not check, with why."""
        rows = self._conn.execute(
            "SELECT shard, error FROM dist_shards WHERE job = %s AND error IS NOT NULL ORDER BY shard", (job,)
        )
        return [(int(shard), str(error)) for shard, error in rows]

    def observations(self, job: str, after: int = 0, limit: int = 5000) -> list[tuple[int, str]]:
        """Up to ``limit`` observations (arrival number, codec JSON) of the dispatch that arrived after
        ``after``, in arrival order. A row whose transaction commits late may carry a number already passed:
        :meth:`observations_of` finds such rows by URL."""
        rows = self._conn.execute(
            "SELECT seq, data FROM dist_observations WHERE job = %s AND seq > %s ORDER BY seq LIMIT %s",
            (job, after, limit),
        )
        return [(int(seq), str(data)) for seq, data in rows]

    def observations_of(self, job: str, urls: list[str]) -> list[str]:
        """The observations (codec JSON) of those URLs that have one."""
        rows = self._conn.execute(
            "SELECT data FROM dist_observations WHERE job = %s AND url = ANY(%s)", (job, urls)
        )
        return [str(row[0]) for row in rows]

    def host_stats(self, job: str) -> list[str]:
        """Each finished shard's per-host figures (codec JSON)."""
        rows = self._conn.execute("SELECT host_stats FROM dist_shards WHERE job = %s ORDER BY shard", (job,))
        return [row[0] for row in rows]

    def close_job(self, job: str) -> None:
        """Forget the dispatch: its rows, and the job itself (a task still queued for it does nothing)."""
        with self._conn.transaction():
            for table in (*_TABLES, "dist_jobs"):
                self._conn.execute(f"DELETE FROM {table} WHERE job = %s", (job,))

    # ---- a worker ------------------------------------------------------------------------------------
    def job_open(self, job: str) -> bool:
        """Whether the coordinator still waits for this dispatch."""
        return self._conn.execute(_JOB_OPEN, (job,)).fetchone() is not None

    def shard_done(self, job: str, shard: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM dist_shards WHERE job = %s AND shard = %s", (job, shard))
        return row.fetchone() is not None

    def observed(self, job: str, urls: Iterable[str]) -> set[str]:
        """Which of ``urls`` are already recorded for the dispatch (by an earlier delivery of the task)."""
        rows = self._conn.execute(
            "SELECT url FROM dist_observations WHERE job = %s AND url = ANY(%s)", (job, list(urls))
        )
        return {row[0] for row in rows}

    def record(self, job: str, rows: list[tuple[str, str]], shard: int = 0) -> bool:
        """Record (url, codec JSON) rows of a shard, in one statement and one round trip, if the dispatch is
        still open; a URL recorded before keeps its first row (and is counted once). Whether the
        dispatch is open (a closed one records nothing: the coordinator stopped waiting)."""
        # One JSON parameter: psycopg built a text[] parameter element by element, escaping each in Python.
        pairs = json.dumps(rows, separators=(",", ":"))
        row = self._conn.execute(_RECORD, {"job": job, "shard": shard, "rows": pairs}).fetchone()
        return bool(row and row[0])

    def finish_shard(self, job: str, shard: int, host_stats: str, error: str | None = None) -> None:
        self._conn.execute(
            "INSERT INTO dist_shards (job, shard, host_stats, error) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (job, shard, host_stats, error),
        )


def holds_job(url: str, job: str, timeout_s: float) -> bool:
    """Whether the database at ``url`` holds the open dispatch ``job``: read only, so a worker asked before
    a dispatch (its ``state.url`` perhaps another database) neither creates tables nor locks any."""
    with psycopg.connect(url, autocommit=True, **liveness(timeout_s)) as conn:
        if conn.execute("SELECT to_regclass('dist_jobs')").fetchone() == (None,):
            return False  # a statement naming the missing table would fail, not answer false
        return conn.execute(_JOB_OPEN, (job,)).fetchone() is not None
