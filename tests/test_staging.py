"""History rows staged while the check runs (pipeline/health/staging.py), and the runs that use them."""

from __future__ import annotations

import io
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from localsite import LocalSite, make_settings, one_article_per_url

from pipeline.config import Settings
from pipeline.health import staging
from pipeline.health.history import HistoryStore
from pipeline.health.verdict import verdicts
from pipeline.models import ExitCode, LinkResult, LinkStatus, Observation, Outcome, RunOptions
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
A, B, C, D, E = (f"http://example.test/{name}" for name in "abcde")


def _links(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM links ORDER BY url").fetchall()


def _night_before(store: HistoryStore) -> None:
    """C failing for a day, D alive, B alive: histories the staged rows must extend as ``record`` does."""
    before = DAY0 - timedelta(days=1)
    store.record(
        [
            LinkResult(
                C,
                LinkStatus.FAILING,
                500,
                reason="x",
                first_failed_at=before,
                consecutive_failures=1,
                checked_at=before,
                failure_kind="soft",
            ),
            LinkResult(D, LinkStatus.OK, 200, D, last_success_at=before, checked_at=before),
            LinkResult(B, LinkStatus.OK, 200, B, last_success_at=before, checked_at=before),
        ],
        "night-0",
        before,
    )


def _record_night(path: Path, stage: bool) -> None:
    """One night's verdicts recorded, with the answered URLs' rows staged as they "arrived" or not."""
    store = HistoryStore(path)
    _night_before(store)
    history = store.load([A, B, C, D, E])
    settings = make_settings(path.parent)
    ok_a = Observation(A, Outcome.SUCCESS, 200, A, host="example.test")
    moved_b = Observation(B, Outcome.MOVED, 200, E, (E,), host="example.test")
    retried_c = Observation(C, Outcome.SUCCESS, 200, C, host="example.test")
    ok_d = Observation(D, Outcome.SUCCESS, 200, D, host="example.test")
    # What the run records at its end: A's answer was replaced by a later one (a 404), C's by a second
    # success (a retry: an equal answer, another observation), E is the baseline (never recorded).
    final = {
        A: Observation(A, Outcome.HARD, 404, A, reason="HTTP 404", host="example.test"),
        B: moved_b,
        C: Observation(C, Outcome.SUCCESS, 200, C, host="example.test"),
        D: ok_d,
    }
    early = staging.EarlyRows(store, "night-1", history, settings.health, {E}) if stage else None
    if early is not None:
        early([ok_a, moved_b, retried_c])
        early([ok_d, Observation(E, Outcome.SUCCESS, 200, E, host="example.test")])
        assert len(store._db.execute("SELECT * FROM temp.staged_links").fetchall()) == 4
    staged = early.confirm(final) if early is not None else set()
    if stage:
        assert staged == {B, D}  # A and C: the observations recorded are not the ones staged
    _, judged = verdicts([A, B, C, D], final, history, None, settings, DAY0)
    store.record(judged, "night-1", DAY0, staged)
    store.close()


def test_staged_rows_record_what_the_verdicts_at_the_end_record(tmp_path: Path) -> None:
    """Staged rows, with their replaced observations dropped, leave the history an unstaged record leaves."""
    (tmp_path / "staged").mkdir()
    (tmp_path / "plain").mkdir()
    _record_night(tmp_path / "staged" / "h.db", stage=True)
    _record_night(tmp_path / "plain" / "h.db", stage=False)

    rows = _links(tmp_path / "staged" / "h.db")
    assert rows == _links(tmp_path / "plain" / "h.db")
    by_url = {row[0]: row for row in rows}
    assert by_url[A][1] == "failing" and by_url[B][1] == "redirected" and by_url[D][1] == "ok"
    assert by_url[B][8] == DAY0.isoformat() and by_url[B][11] == '["ok", "redirected"]'
    assert by_url[C][1] == "ok" and by_url[C][9] == 0  # the streak ended


def test_staged_rows_that_no_record_takes_are_dropped(tmp_path: Path) -> None:
    """A record given no staged URL drops the staged table: none of its rows reaches the history."""
    store = HistoryStore(tmp_path / "h.db")
    settings = make_settings(tmp_path)
    early = staging.EarlyRows(store, "r", {}, settings.health, set())
    early([Observation(A, Outcome.SUCCESS, 200, A, host="example.test")])
    store.record([LinkResult(B, LinkStatus.OK, 200, B, last_success_at=DAY0, checked_at=DAY0)], "r", DAY0)
    store.close()
    assert [row[0] for row in _links(tmp_path / "h.db")] == [B]


# ---- whole runs -----------------------------------------------------------------------------------


def _settings(root: Path, corpus: Path) -> Settings:
    return make_settings(
        root,
        corpus={"roots": [str(corpus)]},
        health={"hard": {"runs": 1, "days": 0}, "soft": {"runs": 1, "days": 0}},
        retry={"attempts": 1},
    )


def _spy_staging(monkeypatch: pytest.MonkeyPatch, after: Any = None) -> list[str]:
    """The URLs staged during the run (``after`` runs once rows were staged)."""
    staged: list[str] = []
    real = HistoryStore.stage_links

    def stage_links(self: HistoryStore, rows: list[tuple[Any, ...]]) -> None:
        real(self, rows)
        staged.extend(row[0] for row in rows)
        if rows and after is not None:
            after()

    monkeypatch.setattr(HistoryStore, "stage_links", stage_links)
    return staged


def _serve(site: LocalSite) -> list[str]:
    site.route("/ok", body=b"ok")
    site.route("/slow", body=b"ok", delay=1.0)  # the last answer: the check still runs after the others
    return [site.url("/ok"), site.url("/ok?again"), site.url("/slow")]  # one host


def test_an_outage_found_at_the_end_records_the_answers_staged_and_no_failure(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers staged before the run proved an outage are recorded as without staging; failures are not."""
    refused = [f"http://127.0.0.{n}:9/x" for n in range(60, 66)]  # nothing listens: refused, below HTTP
    urls = [*_serve(local_site), *refused]
    results = {}
    for name, stage in (("staged", True), ("plain", False)):
        root = tmp_path / name
        settings = _settings(root, one_article_per_url(root, urls))
        with monkeypatch.context() as patched:
            if not stage:
                patched.setattr(HistoryStore, "stages", False)
            staged = _spy_staging(patched)
            options = RunOptions(now=lambda: DAY0, show_progress=False, mode="check-only")
            outcome = refresh(settings, options, io.StringIO())
        assert outcome.report.run.outage, "the run must be judged an outage"
        # The fast answers are staged before the end (the last may be too, just before the check's end).
        assert (set(urls[:2]) <= set(staged) <= set(urls[:3])) if stage else not staged
        results[name] = _links(settings.state.database)
    rows = [row[:11] for row in results["staged"]]  # the run ids differ
    assert rows == [row[:11] for row in results["plain"]]
    assert sorted(row[0] for row in rows) == sorted(urls[:3]) and {row[1] for row in rows} == {"ok"}


def test_a_run_stopped_mid_check_records_none_of_its_staged_rows(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop request after rows were staged leaves the history and the articles as an unstaged run does."""
    urls = _serve(local_site)
    corpus = one_article_per_url(tmp_path, urls)
    settings = _settings(tmp_path, corpus)
    stop = threading.Event()
    staged = _spy_staging(monkeypatch, after=stop.set)  # as SIGTERM's handler does, mid-check
    before = {path.name: path.read_bytes() for path in corpus.iterdir()}
    options = RunOptions(now=lambda: DAY0, show_progress=False, mode="refresh", stop=stop)

    outcome = refresh(settings, options, io.StringIO())

    assert outcome.exit_code is ExitCode.INTERRUPTED and staged
    assert _links(settings.state.database) == []
    assert {path.name: path.read_bytes() for path in corpus.iterdir()} == before
    with sqlite3.connect(settings.state.database) as db:
        assert db.execute("SELECT kind FROM runs").fetchall() == [("interrupted",)]


# ---- the log copied aside (database.checkpoint_aside: SQLite's file itself, so not a shared test) ----


def test_a_write_after_the_checkpoint_aside_is_kept_and_the_log_is_merged_at_close(tmp_path: Path) -> None:
    """``checkpoint_aside`` copies the log into the file on a thread; a later write lands; no log is left."""
    path = tmp_path / "h.db"
    store = HistoryStore(path)
    store.start_run("r1", DAY0, "refresh")
    store.record(
        [LinkResult("https://a.test/", LinkStatus.OK, 200, last_success_at=DAY0, checked_at=DAY0)], "r1", DAY0
    )
    store.checkpoint_aside()
    assert store._aside is not None
    store._aside.join()
    alone = tmp_path / "alone.db"  # the file without its log: holds what the checkpoint copied into it
    alone.write_bytes(path.read_bytes())
    with sqlite3.connect(alone) as copy:
        assert copy.execute("SELECT url FROM links").fetchall() == [("https://a.test/",)]
    store.record(
        [LinkResult("https://b.test/", LinkStatus.OK, 200, last_success_at=DAY0, checked_at=DAY0)], "r1", DAY0
    )
    store.close()
    assert not (tmp_path / "h.db-wal").exists()
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT url FROM links ORDER BY url")] == [
            "https://a.test/",
            "https://b.test/",
        ]
