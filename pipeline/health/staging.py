"""Verdict rows of answered URLs, staged while the check still runs and recorded at its end.

Why: the parent process is idle while its check's process asks the URLs, and after the last answer the
run spent about 0.05 s on ``pipeline bench --check-only``'s 5,000 links building and writing their
history rows. A URL that answered (``ok`` or ``redirected``) gets the same verdict whatever the rest of
the run finds: the outage guard and a partial run hold back failures only, and the time the checks end
(``now``) fills only its last success and last check. So its row is built as its observation arrives
(``EarlyRows``) into a temporary table of the history's connection, and ``HistoryStore.record`` copies
those rows in one statement with ``now`` filled in.

What the end changes is honoured there: a URL whose last observation is not the one staged (a retry or a
later answer replaced it) has its staged row dropped and is recorded the ordinary way, as is every URL
that failed. A run that stops before its record (a stop request, a lost check) never copies the table,
which goes with its connection: its history is what it would have been without staging. SQLite only (a
PostgreSQL history, shared by workers, records at the end as before).

Reads: the run's history, due URLs, ``health.*`` (through ``verdict.judge``). Writes: ``temp.staged_links``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Container, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.config import HealthSettings
from pipeline.health.database import Texts, upsert
from pipeline.health.readcache import ReadCache
from pipeline.health.verdict import judge
from pipeline.models import ANSWERED, LinkResult, Observation, UrlHistory
from pipeline.text import iso

RECENT = 10  # statuses kept per URL

# The columns of ``links`` a row holds, in ``link_row``'s order; the two times are the run's ``now``.
_COLUMNS = (
    "url, status, http_status, final_url, redirects, reason, first_failed_at, last_success_at,"
    " last_checked_at, consecutive_failures, failure_kind, recent, last_run_id"
)
# A stored row replaced by its new one: every column but the key (one clause for both ways of writing).
LINK_UPSERT = upsert("url", tuple(column.strip() for column in _COLUMNS.split(",")[1:]))
_TIMES = (7, 8)  # last_success_at and last_checked_at: ``now`` for every answered URL
_STAGED = (
    "url, status, http_status, final_url, redirects, reason, first_failed_at, consecutive_failures,"
    " failure_kind, recent, last_run_id"
)
_CREATE = f"CREATE TEMP TABLE IF NOT EXISTS staged_links ({_STAGED.replace('url,', 'url PRIMARY KEY,', 1)})"
_STAGE = f"INSERT OR REPLACE INTO temp.staged_links ({_STAGED}) VALUES ({', '.join('?' * 11)})"
# The same upsert as ``HistoryStore._upsert`` (``WHERE true``: SQLite's upsert after a SELECT needs it).
_COPY = (
    f"INSERT INTO links ({_COLUMNS}) SELECT url, status, http_status, final_url, redirects, reason,"
    " first_failed_at, ?1, ?1, consecutive_failures, failure_kind, recent, last_run_id"
    " FROM temp.staged_links WHERE true" + LINK_UPSERT
)
# A moment no check ends at: the ``now`` an early verdict is judged with (never stored: see ``_TIMES``).
STAGED_AT = datetime.max.replace(tzinfo=UTC)


def link_row(
    r: LinkResult, before: UrlHistory | None, run_id: str, now: datetime, text: Texts
) -> tuple[Any, ...]:
    """The ``links`` row of a verdict (``_COLUMNS``), given the URL's stored history before this run."""
    recent = (*(before.recent if before else ()), r.status.value)[-RECENT:]
    return (
        r.url,
        r.status.value,
        r.http_status,
        r.final_url,
        text(r.redirects),
        r.reason,
        text(r.first_failed_at),
        text(r.last_success_at),
        text(r.checked_at or now),
        r.consecutive_failures,
        r.failure_kind if r.consecutive_failures else None,
        text(recent),
        run_id,
    )


class StagedLinks(ReadCache):
    """The history's temporary table of staged verdict rows (``HistoryStore.record`` copies it)."""

    _staging = False  # whether this connection holds ``temp.staged_links``

    @property
    def stages(self) -> bool:
        """Whether rows can be staged: SQLite only (a PostgreSQL history records at the end)."""
        return not self._postgres

    def stage_links(self, rows: list[tuple[Any, ...]]) -> None:
        """Hold these rows (``link_row`` without ``_TIMES``) for this run's record; a URL's last stands."""
        if not rows:
            return
        if not self._staging:
            self._db.execute(_CREATE)
            self._staging = True
        self._db.executemany(_STAGE, rows)

    def unstage_links(self, urls: list[str]) -> None:
        """Drop the staged rows of these URLs (their verdict is recorded the ordinary way)."""
        if urls and self._staging:
            self._db.executemany("DELETE FROM temp.staged_links WHERE url = ?", [(url,) for url in urls])

    def _record_staged(self, now: datetime, copy: bool) -> None:
        """Inside ``record``'s transaction: the staged rows into ``links`` with this run's time (``copy``),
        or dropped (none stands: staging failed, or the run judged none of them)."""
        if self._staging:
            if copy:
                self._db.execute(_COPY, (iso(now),))
            self._db.execute("DROP TABLE temp.staged_links")
            self._staging = False


class EarlyRows:
    """The check's ``meanwhile``: each answered due URL's row staged as its observation arrives.

    ``history`` is the run's (loaded before the check: no verdict is recorded between, so it is what
    ``record`` would load); ``skip``: URLs asked only to judge the network (the baseline and canaries,
    never recorded); ``judged`` sees each staged verdict (``report.early``), judged at ``STAGED_AT``.
    Which rows stand is decided by ``confirm`` on the observations the run records.
    """

    def __init__(
        self,
        store: StagedLinks,
        run_id: str,
        history: Mapping[str, UrlHistory],
        health: HealthSettings,
        skip: Container[str],
        judged: Callable[[LinkResult], None] | None = None,
    ) -> None:
        self._store, self._run_id, self._history, self._health = store, run_id, history, health
        self._skip = skip
        self._judged = judged
        self._staged: dict[str, Observation] = {}  # URL -> the observation its staged row was made from
        self._broken = False

    def __call__(self, arrived: list[Observation]) -> None:
        if self._broken:
            return
        rows, text = [], Texts()
        for obs in arrived:
            if obs.outcome not in ANSWERED or obs.url in self._skip:
                continue  # a failure waits for the outage guard; the baseline is not recorded
            result = judge(obs, self._history.get(obs.url), self._health, STAGED_AT)
            row = link_row(result, self._history.get(obs.url), self._run_id, STAGED_AT, text)
            rows.append(tuple(value for column, value in enumerate(row) if column not in _TIMES))
            self._staged[obs.url] = obs
            if self._judged is not None:
                self._judged(result)
        try:
            self._store.stage_links(rows)
        except sqlite3.Error:  # a temporary table that cannot be written: every row is made at the end
            self._broken = True

    def confirm(self, observations: Mapping[str, Observation]) -> set[str]:
        """The URLs whose staged row stands: their last observation, among the ones the run records, is
        the one staged (the others' rows are dropped). ``record`` copies these instead of their verdicts."""
        staged, self._staged = self._staged, {}
        if self._broken:
            return set()
        stale = [url for url, obs in staged.items() if observations.get(url) is not obs]
        try:
            self._store.unstage_links(stale)
        except sqlite3.Error:
            self._broken = True
            return set()
        return staged.keys() - stale
