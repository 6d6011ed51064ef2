"""History store on real SQLite files: link history, the dead rule across runs, run history."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.config import HealthSettings
from pipeline.errors import PathUnusable
from pipeline.health import history
from pipeline.health.history import HistoryStore
from pipeline.health.staging import RECENT
from pipeline.health.verdict import judge
from pipeline.models import LinkResult, LinkStatus, Observation, Outcome, StoredPage

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
URL = "https://example.org/page"


def test_creates_folder_schema_and_wal(tmp_path: Path) -> None:
    """Opening a store in a missing folder creates it, the tables, and WAL journaling."""
    path = tmp_path / "deep" / "state" / "history.sqlite3"
    with HistoryStore(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"links", "runs"} <= tables


def test_record_and_load_round_trip(tmp_path: Path) -> None:
    """What record stores, load returns: status, code, final URL, chain, dates, streak."""
    result = LinkResult(
        URL,
        LinkStatus.FAILING,
        http_status=404,
        final_url="https://example.org/new",
        redirects=("https://example.org/new",),
        reason="HTTP 404",
        first_failed_at=T0,
        consecutive_failures=1,
        checked_at=T0,
    )
    with HistoryStore(tmp_path / "h.db") as store:
        store.record([result], "run-1", T0)
        loaded = store.load([URL, "https://unknown.example/"])
    assert set(loaded) == {URL}
    got = loaded[URL]
    assert (got.status, got.http_status, got.final_url, got.redirects) == (
        LinkStatus.FAILING,
        404,
        "https://example.org/new",
        ("https://example.org/new",),
    )
    assert (got.first_failed_at, got.last_checked_at, got.consecutive_failures) == (T0, T0, 1)
    assert got.recent == ("failing",)


def test_skipped_invalid_and_carried_results_are_not_stored(tmp_path: Path) -> None:
    """Never-requested URLs and verdicts carried from an earlier run leave history untouched."""
    earlier = T0 - timedelta(days=2)
    with HistoryStore(tmp_path / "h.db") as store:
        store.record(
            [LinkResult(URL, LinkStatus.OK, checked_at=earlier, last_success_at=earlier)], "r0", earlier
        )
        store.record(
            [
                LinkResult("https://a.example/", LinkStatus.SKIPPED),
                LinkResult("https://b.example/", LinkStatus.INVALID),
                LinkResult(URL, LinkStatus.OK, checked_at=earlier, last_success_at=earlier),
            ],
            "r1",
            T0,
        )
        loaded = store.load([URL, "https://a.example/", "https://b.example/"])
    assert set(loaded) == {URL}
    assert loaded[URL].last_checked_at == earlier
    assert loaded[URL].recent == ("ok",)


def test_recent_statuses_are_capped(tmp_path: Path) -> None:
    """Only the last RECENT statuses are kept, oldest first."""
    with HistoryStore(tmp_path / "h.db") as store:
        for i in range(RECENT + 3):
            status = LinkStatus.OK if i % 2 else LinkStatus.FAILING
            now = T0 + timedelta(days=i)
            store.record([LinkResult(URL, status, checked_at=now)], f"r{i}", now)
        recent = store.load([URL])[URL].recent
    assert len(recent) == RECENT
    assert recent[-1] == "failing"  # i = RECENT + 2 is even
    assert recent[0] == "ok"  # i = 3


def test_dead_after_three_runs_over_three_days_through_the_store(tmp_path: Path) -> None:
    """A 404 on runs at days 0, 1, 3 (fake clock, real SQLite between runs) becomes dead at the third."""
    health = HealthSettings()
    statuses = []
    for run, day in enumerate((0, 1, 3)):
        now = T0 + timedelta(days=day)
        with HistoryStore(tmp_path / "h.db") as store:
            history = store.load([URL]).get(URL)
            result = judge(Observation(URL, Outcome.HARD, 404, reason="HTTP 404"), history, health, now)
            store.record([result], f"run-{run}", now)
            statuses.append(result.status)
    assert statuses == [LinkStatus.FAILING, LinkStatus.FAILING, LinkStatus.DEAD]


def test_soft_kind_survives_the_store(tmp_path: Path) -> None:
    """A soft failure followed by 404s keeps the soft threshold after a round trip through SQLite."""
    health = HealthSettings()
    last = None
    for day, outcome in ((0, Outcome.SOFT), (1, Outcome.HARD), (3, Outcome.HARD)):
        now = T0 + timedelta(days=day)
        with HistoryStore(tmp_path / "h.db") as store:
            history = store.load([URL]).get(URL)
            last = judge(
                Observation(URL, outcome, 503 if outcome is Outcome.SOFT else 404), history, health, now
            )
            store.record([last], "r", now)
            assert store.load([URL])[URL].failure_kind == "soft"
    assert last is not None and last.status is LinkStatus.FAILING


def test_load_handles_more_urls_than_one_query(tmp_path: Path) -> None:
    """Loading 1,200 URLs (more than one IN-list chunk) returns every stored one."""
    urls = [f"https://example.org/{i}" for i in range(1200)]
    with HistoryStore(tmp_path / "h.db") as store:
        store.record([LinkResult(u, LinkStatus.OK, checked_at=T0) for u in urls[::2]], "r", T0)
        assert len(store.load(urls)) == 600


def test_runs_listed_newest_first_with_totals(tmp_path: Path) -> None:
    """list_runs gives newest first with outage and totals; get_report(None) is the latest finished."""
    with HistoryStore(tmp_path / "h.db") as store:
        for i in range(3):
            start = T0 + timedelta(days=i)
            store.start_run(f"run-{i}", start, "refresh")
            if i < 2:
                store.finish_run(f"run-{i}", start + timedelta(minutes=5), 0, None, {"ok": i}, {"run": i})
        runs = store.list_runs(limit=2)
        assert [r["id"] for r in runs] == ["run-2", "run-1"]
        assert runs[0]["finished_at"] is None
        assert runs[1]["totals"] == {"ok": 1}
        assert store.get_report(None) == {"run": 1}
        assert store.get_report("run-0") == {"run": 0}
        assert store.get_report("run-2") is None
        assert store.get_report("nope") is None


def test_only_the_newest_reports_are_kept_and_totals_stay(tmp_path: Path) -> None:
    """Reports beyond keep_reports are dropped (compressed ones kept re-render exactly); totals remain."""
    big = {"links": [{"url": f"https://example.org/{i}", "status": "ok"} for i in range(2000)]}
    with HistoryStore(tmp_path / "h.db") as store:
        for i in range(4):
            start = T0 + timedelta(days=i)
            store.start_run(f"run-{i}", start, "refresh")
            store.finish_run(f"run-{i}", start, 0, None, {"ok": i}, {**big, "run": i}, keep_reports=2)
        assert store.get_report("run-3") == {**big, "run": 3}
        assert store.get_report("run-2") == {**big, "run": 2}
        assert store.get_report("run-1") is None and store.get_report("run-0") is None
        assert [r["totals"] for r in store.list_runs(10)] == [{"ok": 3}, {"ok": 2}, {"ok": 1}, {"ok": 0}]
    assert (tmp_path / "h.db").stat().st_size < 200_000


def test_outage_reason_is_stored(tmp_path: Path) -> None:
    """A run that ended as an outage keeps its reason."""
    with HistoryStore(tmp_path / "h.db") as store:
        store.start_run("r", T0, "refresh")
        store.finish_run("r", T0, 0, "9 of 10 hosts failed below HTTP", {}, {})
        assert store.list_runs(5)[0]["outage"] == "9 of 10 hosts failed below HTTP"


def test_reader_sees_committed_batch_while_store_is_open(tmp_path: Path) -> None:
    """A second connection reads a recorded batch as soon as record returns (one committed transaction)."""
    path = tmp_path / "h.db"
    with HistoryStore(path) as writer, HistoryStore(path) as reader:
        writer.record(
            [LinkResult(f"https://e.org/{i}", LinkStatus.OK, checked_at=T0) for i in range(50)], "r", T0
        )
        assert len(reader.load(f"https://e.org/{i}" for i in range(50))) == 50


_T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _finished(
    store: HistoryStore, run_id: str, day: int, kind: str = "complete", outage: str | None = None
) -> None:
    when = _T0 + timedelta(days=day)
    store.start_run(run_id, when, "refresh", kind)
    store.finish_run(run_id, when, 0, outage, {"urls": 1}, {"run": {"id": run_id}}, kind=kind)


def test_an_older_database_gains_the_run_kind_column(tmp_path: Path) -> None:
    """A history written before run kinds existed opens, and its runs read as complete."""
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
            " mode TEXT NOT NULL, exit_code INTEGER, outage TEXT, totals TEXT NOT NULL DEFAULT '{}',"
            " report BLOB)"
        )
        db.execute("INSERT INTO runs (id, started_at, mode) VALUES ('old', ?, 'refresh')", (_T0.isoformat(),))

    with HistoryStore(path) as store:
        [run] = store.list_runs(5)

    assert run["id"] == "old" and run["kind"] == "complete" and run["started_at"] == _T0


def test_outage_streak_counts_complete_runs_only(tmp_path: Path) -> None:
    """The streak is the newest complete runs that were outages; partial runs neither count nor break it."""
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        _finished(store, "r0", 0)
        _finished(store, "r1", 1, outage="down")
        _finished(store, "r2", 2, kind="partial")
        _finished(store, "r3", 3, outage="down")
        _finished(store, "r4", 4, kind="interrupted", outage="down")
        streak = store.outage_streak()
        _finished(store, "r5", 5)
        after = store.outage_streak()

    assert streak == (2, _T0 + timedelta(days=1))
    assert after == (0, None)


def test_latest_report_and_trend_of_a_past_run(tmp_path: Path) -> None:
    """Without --run the newest complete run is shown; `until` lists only runs up to a past one."""
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        _finished(store, "r0", 0)
        _finished(store, "r1", 1)
        _finished(store, "r2", 2, kind="partial")
        latest = store.get_report(None)
        until = [run["id"] for run in store.list_runs(10, until=_T0 + timedelta(days=1))]

    assert latest == {"run": {"id": "r1"}}
    assert until == ["r1", "r0"]


def _page(url: str, final: str, **kw: object) -> StoredPage:
    return StoredPage(url=url, final_url=final, read_at=T0, **kw)  # type: ignore[arg-type]


def test_pages_round_trip_by_requested_url(tmp_path: Path) -> None:
    """A page stored under its final URL is found by the URL that was requested, with every field."""
    page = _page(
        URL,
        "https://example.org/final",
        description="Whole text",
        description_source="og",
        image_url="https://example.org/i.jpg",
        image_width=1200,
        image_height=630,
        image_alive=True,
        canonical="https://example.org/final",
        amp="https://example.org/final.amp",
        etag='"abc"',
        last_modified="Tue, 01 Dec 2026 03:00:00 GMT",
    )
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_pages([page])
    with HistoryStore(tmp_path / "h.db") as store:
        assert store.load_pages([URL, "https://other.example/"]) == {URL: page}
        assert store.validators([URL]) == {URL: ('"abc"', "Tue, 01 Dec 2026 03:00:00 GMT")}


def test_validators_leave_out_pages_without_any(tmp_path: Path) -> None:
    """Only pages that sent an ETag or Last-Modified have validators; unknown URLs have none."""
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_pages([_page(URL, URL, description="x")])
        assert store.validators([URL, "https://unknown.example/"]) == {}


def test_forgotten_page_is_no_longer_applied(tmp_path: Path) -> None:
    """A page refused on a later read (now an error page) loses its stored metadata."""
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_pages([_page(URL, URL, description="old")])
        store.record_pages([], forget=[URL])
        assert store.load_pages([URL]) == {}


def test_share_probe_is_stored_on_every_page_using_that_image(tmp_path: Path) -> None:
    """Probing a share image records its aliveness and size on the pages that declare it."""
    image = "https://example.org/i.jpg"
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_pages(
            [
                _page(URL, URL, image_url=image),
                _page("https://b.example/", "https://b.example/", image_url=image),
            ]
        )
        store.record_share_probes({image: (True, 800, 600)})
        loaded = store.load_pages([URL, "https://b.example/"])
    assert {(p.image_alive, p.image_width, p.image_height) for p in loaded.values()} == {(True, 800, 600)}


def test_share_probes_find_their_pages_by_index_also_in_an_older_history(tmp_path: Path) -> None:
    """A share probe finds its pages by an index (made in a history that lacked it), not by a scan."""
    path = tmp_path / "h.db"
    with HistoryStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX pages_image_url")  # a history written before the index existed
    with HistoryStore(path):
        pass
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN UPDATE pages SET image_alive = 1 WHERE image_url = ?", ("x",)
        ).fetchall()
    assert any(" INDEX pages_image_url " in row[-1] for row in plan), plan  # (COVERING) INDEX


def test_decided_articles_round_trip_with_any_file_name(tmp_path: Path) -> None:
    """Settled articles are remembered by their file name's bytes (not necessarily UTF-8)."""
    name = b"/corpus/x\xff.md"
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_decided([(name, 45, 123, "digest")])
        store.record_decided([(name, 46, 124, "digest2")])
        assert store.load_decided() == {name: (46, 124, "digest2")}


def test_decided_articles_are_loaded_for_the_paths_asked(tmp_path: Path) -> None:
    """Given paths, only their rows come back (the write pass reads a batch at a time)."""
    with HistoryStore(tmp_path / "h.db") as store:
        store.record_decided([(b"/c/%d.md" % n, n, n, "d") for n in range(5)])
        assert store.load_decided([b"/c/1.md", b"/c/3.md", b"/c/9.md"]) == {
            b"/c/1.md": (1, 1, "d"),
            b"/c/3.md": (3, 3, "d"),
        }
        assert len(store.load_decided()) == 5


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_an_unversioned_history_is_migrated_in_place(tmp_path: Path) -> None:
    """A version-0 file (links and runs only, no kind) is upgraded in place: data kept, tables added."""
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE links (url TEXT PRIMARY KEY, status TEXT NOT NULL, http_status INTEGER,"
            " final_url TEXT, redirects TEXT NOT NULL DEFAULT '[]', reason TEXT NOT NULL DEFAULT '',"
            " first_failed_at TEXT, last_success_at TEXT, last_checked_at TEXT,"
            " consecutive_failures INTEGER NOT NULL DEFAULT 0, failure_kind TEXT,"
            " recent TEXT NOT NULL DEFAULT '[]', last_run_id TEXT)"
        )
        db.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
            " mode TEXT NOT NULL, exit_code INTEGER, outage TEXT, totals TEXT NOT NULL DEFAULT '{}',"
            " report BLOB)"
        )
        db.execute("INSERT INTO links (url, status, recent) VALUES (?, 'dead', '[\"dead\"]')", (URL,))
        db.execute("INSERT INTO runs (id, started_at, mode) VALUES ('old', ?, 'refresh')", (_T0.isoformat(),))
    assert _version(path) == 0

    with HistoryStore(path) as store:
        assert store.schema_version == 3
        assert store.load([URL])[URL].status == LinkStatus.DEAD
        [run] = store.list_runs(5)
        store.record_pages([_page(URL, URL, description="kept")])

    assert run["kind"] == "complete" and _version(path) == 3
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"links", "runs", "archive", "pages", "page_urls", "decided", "files"} <= tables
    with HistoryStore(path) as store:  # a second open finds it current and changes nothing
        assert store.schema_version == 3 and store.list_runs(5)[0]["id"] == "old"


def test_a_history_from_a_newer_pipeline_is_refused(tmp_path: Path) -> None:
    """A file at a schema version above this pipeline's is not touched and gives a clear error."""
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, mode TEXT NOT NULL)")
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(PathUnusable, match="schema version 99, newer than this pipeline's 3"):
        HistoryStore(path)
    assert _version(path) == 99
    with sqlite3.connect(path) as db:
        assert {row[1] for row in db.execute("PRAGMA table_info(runs)")} == {"id", "started_at", "mode"}


def test_many_verdicts_and_pages_are_written_a_chunk_at_a_time(tmp_path: Path) -> None:
    """More verdicts and pages than a chunk are all stored (in chunks, one transaction), as one would be."""
    urls = [f"https://example.org/{n}" for n in range(10)]
    with pytest.MonkeyPatch.context() as patch, HistoryStore(tmp_path / "h.db") as store:
        patch.setattr(history, "_WRITE_CHUNK", 3)
        store.record((LinkResult(u, LinkStatus.OK, 200, checked_at=T0) for u in urls), "run", T0)
        store.record_pages((_page(u, u + "/final", title=u) for u in urls), forget=[urls[0]])
        loaded, pages = store.load(urls), store.load_pages(urls)

    assert sorted(loaded) == sorted(urls) and all(h.status is LinkStatus.OK for h in loaded.values())
    assert sorted(pages) == sorted(urls[1:]) and all(p.title == p.url for p in pages.values())


def test_rows_recorded_together_keep_their_own_times_and_lists(tmp_path: Path) -> None:
    """Verdicts recorded in one batch keep their own times (equal instants in two offsets stay apart),
    redirect lists and status lists, however many of those values the rows share."""
    east = T0.astimezone(timezone(timedelta(hours=2)))
    results = [
        LinkResult(
            f"{URL}/{n}",
            LinkStatus.OK,
            http_status=200,
            redirects=(f"{URL}/{n}/new",) if n % 2 else (),
            last_success_at=moment,
            checked_at=moment,
        )
        for n, moment in enumerate([T0, east, T0, east])
    ]
    with HistoryStore(tmp_path / "h.db") as store:
        store.record(results, "run-1", T0)
        loaded = store.load(r.url for r in results)

    for r in results:
        got = loaded[r.url]
        assert got.last_success_at is not None and r.last_success_at is not None
        assert (got.last_success_at, got.last_success_at.utcoffset()) == (
            r.last_success_at,
            r.last_success_at.utcoffset(),
        )
        assert (got.last_checked_at, got.redirects, got.recent) == (r.checked_at, r.redirects, ("ok",))


def test_loading_parses_each_distinct_time_once(tmp_path: Path) -> None:
    """Rows recorded in one run share their times: each distinct stored time is parsed once per load."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    urls = [f"https://a.test/{n}" for n in range(50)]
    parsed: list[str | None] = []
    real = history._dt

    def counting(text: str | None) -> datetime | None:
        parsed.append(text)
        return real(text)

    with HistoryStore(tmp_path / "h.db") as store, pytest.MonkeyPatch.context() as patch:
        store.record(
            [LinkResult(u, LinkStatus.OK, 200, checked_at=now, last_success_at=now) for u in urls], "r", now
        )
        patch.setattr(history, "_dt", counting)
        loaded = store.load(urls)

    assert len(loaded) == 50 and {h.last_checked_at for h in loaded.values()} == {now}
    assert len(parsed) == len(set(parsed)) <= 2
