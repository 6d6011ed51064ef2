"""Link and run history in an embedded SQLite database (with `database` and `readcache`: all the SQL).

Reads settings ``state.database`` (the caller passes the path). Returns ``UrlHistory`` records (``load``),
run rows (``list_runs``) and stored report JSON (``get_report``). Writes one transaction per batch
(``record``), in WAL mode with a busy timeout so that a reader (``pipeline report``) never blocks a run.

Per URL it keeps the last verdict, its HTTP status, final URL and redirect chain, the current failure
streak (first failure, failing runs, hard/soft kind), the last success, the last check, and the last
``RECENT`` statuses. Per run: start, end, mode, exit code, outage reason, totals and the report JSON.
Per page (keyed by its final URL, with a map from each requested URL to it): the metadata last read from
it (description and its source, share image with its probed size, canonical, AMP), its validators (ETag,
Last-Modified) and when it was read, so every run can refresh articles without a new request
(``record_pages``, ``load_pages``, ``validators``, ``record_share_probes``).
Everything SQL lives behind ``HistoryStore`` so another database can replace SQLite later.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

from pipeline.health.database import Texts, _dt, upsert
from pipeline.health.staging import LINK_UPSERT, StagedLinks, link_row
from pipeline.models import LinkResult, LinkStatus, Snapshot, StoredPage, UrlHistory
from pipeline.runreport import RunReport
from pipeline.text import iso

_NEVER_STORED = frozenset({LinkStatus.INVALID, LinkStatus.SKIPPED})
_WRITE_CHUNK = 5000  # rows built and written at a time (above postgres.BULK_ROWS: still one COPY each)
_PAGE_COLUMNS = (
    "description",
    "description_source",
    "image_url",
    "image_width",
    "image_height",
    "image_alive",
    "image_source",
    "canonical",
    "amp",
    "title",
    "etag",
    "last_modified",
    "read_at",
)


class HistoryStore(StagedLinks):
    """Link and run history in one SQLite file (created with its folder on first use)."""

    # ---- links ------------------------------------------------------------------------------------
    def load(self, urls: Iterable[str]) -> dict[str, UrlHistory]:
        """Stored history of those URLs that have any; equal values of many rows (the caller's URL strings,
        times, reasons, status lists) are one object (a warm night loads every URL of the corpus)."""
        found: dict[str, UrlHistory] = {}
        asked = list(urls)
        shared: dict[Any, Any] = {url: url for url in asked}
        one = shared.setdefault

        def stamp(text: str | None) -> datetime | None:  # each distinct value parsed once, not once a row
            key = ("time", text)
            return (shared[key] if key in shared else one(key, _dt(text))) if text else None

        def strings(text: str) -> tuple[str, ...]:
            key = ("list", text)
            return shared[key] if key in shared else one(key, tuple(one(i, i) for i in json.loads(text)))  # type: ignore[no-any-return]

        rows = self._rows_in(
            "SELECT url, status, first_failed_at, last_success_at, last_checked_at, consecutive_failures,"
            " failure_kind, http_status, final_url, reason, redirects, recent"
            " FROM links WHERE url IN ({marks})",
            asked,
        )
        for row in rows:
            url = one(row[0], row[0])
            found[url] = UrlHistory(
                url=url,
                status=LinkStatus(row[1]),
                first_failed_at=stamp(row[2]),
                last_success_at=stamp(row[3]),
                last_checked_at=stamp(row[4]),
                consecutive_failures=row[5],
                failure_kind=row[6],
                http_status=row[7],
                final_url=row[8] and one(row[8], row[8]),
                reason=one(row[9], row[9]),
                redirects=strings(row[10]),
                recent=strings(row[11]),
            )
        return found

    def record(
        self, results: Iterable[LinkResult], run_id: str, now: datetime, staged: Container[str] = ()
    ) -> None:
        """Store this run's verdicts in one transaction.

        Skipped and invalid URLs were never requested, and a carried verdict (``checked_at`` before
        ``now``) is old evidence: neither changes the stored history. ``staged``: URLs whose rows were
        staged while the check ran (``staging.EarlyRows.confirm``), copied with ``now`` instead.
        """
        fresh = [
            r
            for r in results
            if r.status not in _NEVER_STORED
            and (r.checked_at is None or r.checked_at >= now)
            and r.url not in staged
        ]
        if not fresh and not self._staging:
            return
        with self._transaction():  # a chunk at a time: a night's rows are never all built at once
            for chunk in (fresh[at : at + _WRITE_CHUNK] for at in range(0, len(fresh), _WRITE_CHUNK)):
                self._upsert(chunk, self.load(r.url for r in chunk), run_id, now)
            self._record_staged(now, copy=bool(staged))

    def _upsert(
        self, fresh: list[LinkResult], previous: dict[str, UrlHistory], run_id: str, now: datetime
    ) -> None:
        text = Texts()
        rows = [link_row(r, previous.get(r.url), run_id, now, text) for r in fresh]
        self._db.executemany(
            "INSERT INTO links (url, status, http_status, final_url, redirects, reason, first_failed_at,"
            " last_success_at, last_checked_at, consecutive_failures, failure_kind, recent, last_run_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + LINK_UPSERT,
            rows,
        )

    # ---- archive copies ---------------------------------------------------------------------------
    def load_archive(self, urls: Iterable[str]) -> dict[str, Snapshot]:
        """Cached archive answers for those URLs that have one (none in a database made before them)."""
        found: dict[str, Snapshot] = {}
        try:
            rows = self._rows_in(
                "SELECT url, archive_url, snapshot_timestamp, checked_at FROM archive WHERE url IN ({marks})",
                urls,
            )
            for row in rows:
                found[row[0]] = Snapshot(row[0], row[1], row[2], datetime.fromisoformat(row[3]))
        except sqlite3.OperationalError:
            return {}  # a read-only (dry-run) open of an older database without the table
        return found

    def record_archive(self, snapshots: Iterable[Snapshot]) -> None:
        """Store archive answers in one transaction (a later answer replaces an earlier one)."""
        rows = [(s.url, s.archive_url, s.timestamp, s.checked_at.isoformat()) for s in snapshots]
        if not rows:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO archive (url, archive_url, snapshot_timestamp, checked_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (url) DO UPDATE SET archive_url = excluded.archive_url,"
                " snapshot_timestamp = excluded.snapshot_timestamp, checked_at = excluded.checked_at",
                rows,
            )

    # ---- pages ------------------------------------------------------------------------------------
    def record_pages(self, pages: Iterable[StoredPage], forget: Iterable[str] = ()) -> None:
        """Store freshly read pages (replacing what was stored) and forget pages that were refused.

        Only a page read in full (a 2xx with its head) is stored: a 304 or a failure leaves the stored
        metadata as it was. ``forget`` lists requested URLs whose page now looks like an error page or a
        wall, so their old metadata is no longer applied.
        """
        remaining, forgotten = iter(pages), list(dict.fromkeys(forget))
        rows = list(islice(remaining, _WRITE_CHUNK))
        if not rows and not forgotten:
            return
        with self._transaction():
            while rows:  # a chunk at a time, as ``record``
                self._record_pages(rows)
                rows = list(islice(remaining, _WRITE_CHUNK))
            self._db.executemany("DELETE FROM page_urls WHERE url = ?", [(u,) for u in forgotten])

    def _record_pages(self, rows: list[StoredPage]) -> None:
        self._db.executemany(
            "INSERT INTO pages (final_url, description, description_source, image_url,"
            " image_width, image_height, image_alive, image_source, canonical, amp, title, etag,"
            " last_modified, read_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + upsert("final_url", _PAGE_COLUMNS),
            [
                (
                    p.final_url,
                    p.description,
                    p.description_source,
                    p.image_url,
                    p.image_width,
                    p.image_height,
                    None if p.image_alive is None else int(p.image_alive),
                    p.image_source,
                    p.canonical,
                    p.amp,
                    p.title,
                    p.etag,
                    p.last_modified,
                    iso(p.read_at),
                )
                for p in rows
            ],
        )
        self._db.executemany(
            "INSERT INTO page_urls (url, final_url) VALUES (?, ?)" + upsert("url", ("final_url",)),
            [(p.url, p.final_url) for p in rows],
        )

    def record_share_probes(self, probes: Mapping[str, tuple[bool, int | None, int | None]]) -> None:
        """Store what probing each share image showed (image URL -> alive, width, height) on its pages."""
        if not probes:
            return
        with self._transaction():
            self._db.executemany(
                "UPDATE pages SET image_alive = ?, image_width = ?, image_height = ? WHERE image_url = ?",
                ((int(alive), w, h, url) for url, (alive, w, h) in probes.items()),  # not a list beside them
            )

    def load_pages(self, urls: Iterable[str]) -> dict[str, StoredPage]:
        """Stored metadata of the pages these requested URLs landed on, keyed by requested URL."""
        return {page.url: page for page in self.stored_pages(urls)}

    def stored_pages(self, urls: Iterable[str]) -> Iterator[StoredPage]:
        """``load_pages`` one page at a time (a warm night reads every page: none is held twice)."""
        rows = self._rows_in(
            "SELECT u.url, p.final_url, p.read_at, p.description, p.description_source, p.image_url,"
            " p.image_width, p.image_height, p.image_alive, p.canonical, p.amp, p.title, p.etag,"
            " p.last_modified, p.image_source FROM page_urls u JOIN pages p ON p.final_url = u.final_url"
            " WHERE u.url IN ({marks})",
            urls,
        )
        for row in rows:
            yield StoredPage(
                url=row[0],
                final_url=row[1],
                read_at=datetime.fromisoformat(row[2]),
                description=row[3],
                description_source=row[4],
                image_url=row[5],
                image_width=row[6],
                image_height=row[7],
                image_alive=None if row[8] is None else bool(row[8]),
                canonical=row[9],
                amp=row[10],
                title=row[11],
                etag=row[12],
                last_modified=row[13],
                image_source=row[14],
            )

    def validators(self, urls: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """``{requested URL: (ETag, Last-Modified)}`` of the stored pages that have either, for rechecks.

        A conditional request answered 304 must leave the stored metadata untouched: store nothing for it.
        """
        return {
            url: (page.etag, page.last_modified)
            for url, page in self.load_pages(urls).items()
            if page.etag or page.last_modified
        }

    # ---- runs -------------------------------------------------------------------------------------
    def start_run(self, run_id: str, started_at: datetime, mode: str, kind: str = "complete") -> None:
        """Record that a run began (``kind``: complete, or partial when it checks only some paths)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO runs (id, started_at, mode, kind) VALUES (?, ?, ?, ?)",
                (run_id, iso(started_at), mode, kind),
            )

    def finish_run(
        self,
        run_id: str,
        finished_at: datetime,
        exit_code: int,
        outage: str | None,
        totals: dict[str, int],
        report: dict[str, Any] | bytes,
        keep_reports: int = 60,
        kind: str | None = None,
    ) -> None:
        """Record how a run ended, with its totals and its whole report.

        Reports are stored compressed (a corpus of millions of links makes a large one), and only the
        newest ``keep_reports`` runs keep theirs; older runs keep their totals for the trend. ``report``
        is the report.json document, or that document's JSON already compressed with zlib (the runner
        compresses it a row at a time).
        """
        blob = (
            report
            if isinstance(report, bytes)
            else zlib.compress(json.dumps(report, ensure_ascii=False).encode("utf-8"), 6)
        )
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, outage = ?, totals = ?, report = ?,"
                " kind = COALESCE(?, kind) WHERE id = ?",
                (iso(finished_at), exit_code, outage, json.dumps(totals), blob, kind, run_id),
            )
            self._db.execute(
                "UPDATE runs SET report = NULL WHERE report IS NOT NULL AND id NOT IN"
                " (SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?)",
                (keep_reports,),
            )

    def forget_run(self, run_id: str) -> None:
        """Remove a run that began but did nothing (its engine was unavailable before any file was read
        for writing)."""
        with self._transaction():
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def set_exit_code(self, run_id: str, exit_code: int) -> None:
        """Correct a finished run's exit code, in its row and its stored report (the report files could
        not be written after the run was saved)."""
        stored = self.get_report(run_id)
        blob = None
        if stored is not None:
            report = RunReport.from_json(stored).with_exit_code(exit_code).to_json()
            blob = zlib.compress(json.dumps(report, ensure_ascii=False).encode("utf-8"), 6)
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET exit_code = ?, report = COALESCE(?, report) WHERE id = ?",
                (exit_code, blob, run_id),
            )

    def list_runs(self, limit: int, *, until: datetime | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` runs (started at or before ``until``, if given), newest first, no reports.

        Times are timezone-aware datetimes; ``kind`` is complete, partial or interrupted.
        """
        rows = self._db.execute(
            "SELECT id, started_at, finished_at, exit_code, outage, totals, mode, kind FROM runs"
            " WHERE CAST(? AS TEXT) IS NULL OR started_at <= ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (iso(until), iso(until), limit),
        )
        return [
            {
                "id": row[0],
                "started_at": _dt(row[1]),
                "finished_at": _dt(row[2]),
                "exit_code": row[3],
                "outage": row[4],
                "totals": json.loads(row[5]),
                "mode": row[6],
                "kind": row[7],
            }
            for row in rows
        ]

    def outage_streak(self) -> tuple[int, datetime | None]:
        """Finished complete runs in a row, newest first, that were outages; and when the first began.

        Partial, interrupted and dry runs are not nights: they neither count nor break the streak.
        """
        rows = self._db.execute(
            "SELECT started_at, outage FROM runs WHERE finished_at IS NOT NULL AND kind = 'complete'"
            " AND mode != 'dry-run' ORDER BY started_at DESC, rowid DESC"
        )
        count, since = 0, None
        for started_at, outage in rows:
            if not outage:
                break
            count, since = count + 1, _dt(started_at)
        return count, since

    def get_report(self, run_id: str | None) -> dict[str, Any] | None:
        """The stored report of a run, or of the latest finished run when ``run_id`` is None."""
        if run_id is None:
            # Like reports/latest: the newest complete run, or the newest of any kind if none is complete.
            row = self._db.execute(
                "SELECT report FROM runs WHERE finished_at IS NOT NULL AND report IS NOT NULL"
                " ORDER BY kind = 'complete' DESC, finished_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute("SELECT report FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        report: dict[str, Any] = json.loads(zlib.decompress(row[0]))
        return report
