"""The history on a real PostgreSQL server (started by the tests on loopback): the same store as SQLite."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import test_health_history as sqlite_tests
from localsite import LocalSite
from pgserver import postgres_server
from test_runs import _cli, _config, _offline_corpus, _one_line_error

from pipeline.errors import PathUnusable
from pipeline.health import postgres
from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, LinkResult, LinkStatus

_NAMES = itertools.count()

# The store-level tests of test_health_history, run unchanged against PostgreSQL. Those left out read
# the SQLite file itself (journal mode, PRAGMA user_version, sqlite_master, its size on disk).
_SHARED = [
    name
    for name in dir(sqlite_tests)
    if name.startswith("test_")
    and name
    not in {
        "test_creates_folder_schema_and_wal",
        "test_only_the_newest_reports_are_kept_and_totals_stay",
        "test_an_older_database_gains_the_run_kind_column",
        "test_an_unversioned_history_is_migrated_in_place",
        "test_a_history_from_a_newer_pipeline_is_refused",
        "test_share_probes_find_their_pages_by_index_also_in_an_older_history",
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def new_database(server: str) -> Callable[[], str]:
    """A fresh, empty database on the server; returns its URL."""

    def create() -> str:
        name = f"t{next(_NAMES)}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return f"{server}/{name}"

    return create


@pytest.mark.parametrize("name", _SHARED)
def test_store_behaves_as_on_sqlite(
    name: str, new_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each SQLite store test passes on PostgreSQL: one database per path the test opens."""
    databases: dict[Path, str] = {}

    def on_postgres(path: Path, *args: Any, **kwargs: Any) -> HistoryStore:
        url = databases.setdefault(path, new_database())
        return HistoryStore(path, *args, url=url, **kwargs)

    monkeypatch.setattr(sqlite_tests, "HistoryStore", on_postgres)
    getattr(sqlite_tests, name)(tmp_path)


def test_large_mtimes_and_any_file_name_round_trip(new_database: Callable[[], str], tmp_path: Path) -> None:
    """Nanosecond mtimes (beyond 32 bits) and non-UTF-8 names survive PostgreSQL's types."""
    url = new_database()
    name, mtime = b"/corpus/x\xff.md", 1_764_558_000_123_456_789
    with HistoryStore(tmp_path / "unused", url=url) as store:
        store.record_files([(name, 10, mtime, 2**40, "s", "{}")])
        assert store.load_files("s") == {name: (10, mtime, 2**40)}
        assert store.file_entries([name]) == {name: "{}"}


def test_share_probes_find_their_pages_by_index(new_database: Callable[[], str], tmp_path: Path) -> None:
    """PostgreSQL's history gets the index that keeps storing share probes from scanning every page."""
    url = new_database()
    with HistoryStore(tmp_path / "unused", url=url):
        pass
    with psycopg.connect(url) as db:
        names = {row[0] for row in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'pages'")}
    assert "pages_image_url" in names


def test_an_old_postgres_history_is_migrated(new_database: Callable[[], str], tmp_path: Path) -> None:
    """A version-1 PostgreSQL history (runs without kind) is upgraded in place and its runs kept."""
    url = new_database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE runs (rowid BIGSERIAL, id TEXT PRIMARY KEY, started_at TEXT NOT NULL,"
            " finished_at TEXT, mode TEXT NOT NULL, exit_code BIGINT, outage TEXT,"
            " totals TEXT NOT NULL DEFAULT '{}', report BYTEA)"
        )
        db.execute(
            "INSERT INTO runs (id, started_at, mode) VALUES ('old', '2026-11-01T03:00:00+00:00', 'refresh')"
        )
        db.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")

    with HistoryStore(tmp_path / "unused", url=url) as store:
        assert store.schema_version == 3
        [run] = store.list_runs(5)
    assert run["id"] == "old" and run["kind"] == "complete"


def test_a_newer_postgres_history_is_refused(new_database: Callable[[], str], tmp_path: Path) -> None:
    """A database at a newer schema version than this pipeline's gives a clear error, untouched."""
    url = new_database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (7)")
    with pytest.raises(PathUnusable, match="schema version 7, newer"):
        HistoryStore(tmp_path / "unused", url=url)
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
        ).fetchone() == (0,)


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    """A state.url nobody listens on is PathUnusable (exit 6) naming the URL without its password."""
    with pytest.raises(PathUnusable, match=r"127\.0\.0\.1:9/h: cannot open the history database") as caught:
        HistoryStore(tmp_path / "unused", url="postgresql://u:secret@127.0.0.1:9/h")
    assert "secret" not in str(caught.value)


def test_refresh_and_runs_use_the_postgres_history(new_database: Callable[[], str], tmp_path: Path) -> None:
    """With state.url set, a refresh records its run in PostgreSQL (no SQLite file) and `runs` lists it."""
    url = new_database()
    config = _config(tmp_path, _offline_corpus(tmp_path), state={"dir": str(tmp_path / "state"), "url": url})

    refreshed = _cli("refresh", "--config", str(config), cwd=tmp_path)
    listed = _cli("runs", "--config", str(config), cwd=tmp_path)

    assert refreshed.returncode == ExitCode.OK, refreshed.stderr
    assert listed.returncode == ExitCode.OK and "refresh" in listed.stdout, listed.stderr
    assert not (tmp_path / "state" / "history.sqlite3").exists()
    with HistoryStore(tmp_path / "unused", url=url, read_only=True) as store:
        assert len(store.list_runs(5)) == 1


def test_refresh_with_an_unreachable_history_exits_6(tmp_path: Path) -> None:
    """A PostgreSQL history nobody serves stops the run with exit 6 before any article is touched."""
    corpus = _offline_corpus(tmp_path)
    before = (corpus / "a.md").read_bytes()
    state = {"dir": str(tmp_path / "state"), "url": "postgresql://u@127.0.0.1:9/h"}
    result = _cli("refresh", "--config", str(_config(tmp_path, corpus, state=state)), cwd=tmp_path)

    assert result.returncode == ExitCode.PATH_UNUSABLE, result.stderr
    assert "127.0.0.1:9/h: cannot open the history database" in result.stderr
    assert (corpus / "a.md").read_bytes() == before


def test_reading_an_empty_postgres_database_is_a_clear_error(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """`runs` on a PostgreSQL database the pipeline never wrote exits 6 saying so, creating nothing."""
    url = new_database()
    config = _config(tmp_path, _offline_corpus(tmp_path), state={"dir": str(tmp_path / "state"), "url": url})

    listed = _cli("runs", "--config", str(config), cwd=tmp_path)

    assert listed.returncode == ExitCode.PATH_UNUSABLE, listed.stderr
    assert "holds no pipeline history yet" in listed.stderr and "Traceback" not in listed.stderr
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (0,)


def test_many_processes_opening_a_fresh_history_at_once_do_not_race(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """Eight stores creating the schema of one fresh database at the same moment all open it."""
    import threading

    url, barrier, errors = new_database(), threading.Barrier(8), []

    def open_one() -> None:
        barrier.wait()
        try:
            HistoryStore(tmp_path / "unused", url=url).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def _cut_connections(url: str) -> None:
    """The server ends every other session on the database, as a restart would."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )


def test_a_connection_the_server_dropped_while_idle_is_made_again(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """The server cuts the store's idle connection (a restart, a failover): the next read and the next
    transaction run on a new one instead of failing the run."""
    url = new_database()
    with HistoryStore(tmp_path / "unused", url=url) as store:
        store.start_run("r1", datetime(2026, 11, 1, tzinfo=UTC), "refresh")
        _cut_connections(url)
        assert [run["id"] for run in store.list_runs(5)] == ["r1"]
        _cut_connections(url)
        store.start_run("r2", datetime(2026, 11, 2, tzinfo=UTC), "refresh")
        assert len(store.list_runs(5)) == 2


def _rows_after(url: str, bulk: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Three batches of 1,500 rows (keys repeated within each) written through ``executemany``, by COPY
    (``bulk``) or one row at a time; the tables' rows after."""
    monkeypatch.setattr(postgres, "BULK_ROWS", 1000 if bulk else 10**9)
    db = postgres.Connection(url, 5, read_only=False)
    try:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT, w BYTEA)")
        db.execute("CREATE TABLE firsts (k TEXT PRIMARY KEY, v BIGINT)")
        db.execute("CREATE TABLE log (rowid BIGSERIAL, v BIGINT)")
        db.execute("CREATE TABLE partial (k TEXT PRIMARY KEY, v BIGINT, first BIGINT)")
        db.execute("INSERT INTO kv VALUES ('k1', -1, NULL), ('kept', -2, NULL)")
        db.execute("BEGIN")  # as the history's own transactions do
        rows = [(f"k{n % 700}", n, None if n % 3 else bytes([n % 256])) for n in range(1500)]
        db.executemany(
            "INSERT INTO kv (k, v, w) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v,"
            " w = excluded.w",
            rows,
        )
        db.executemany(
            "INSERT INTO firsts (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING",
            [(k, v) for k, v, _ in rows],
        )
        db.executemany("INSERT INTO log (v) VALUES (?)", [(v,) for _, v, _ in rows])
        db.executemany(  # a repeated key keeps its first row's `first` and its last row's `v`
            "INSERT INTO partial (k, v, first) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            [(k, v, v) for k, v, _ in rows],
        )
        db.execute("COMMIT")
        return [
            *db.execute("SELECT k, v, w FROM kv ORDER BY k"),
            *db.execute("SELECT k, v FROM firsts ORDER BY k"),
            *db.execute("SELECT v FROM log ORDER BY rowid"),
            *db.execute("SELECT k, v, first FROM partial ORDER BY k"),
        ]
    finally:
        db.close()


def test_a_large_batch_written_by_copy_equals_the_rows_written_one_by_one(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upserts of 1,000 rows or more go through COPY, with the rows' own result: a repeated key keeps its
    last row (DO UPDATE) or its first (DO NOTHING), and rows keep their order; an update of only some
    columns, which merges rows sharing a key, is sent row by row."""
    copies: list[str] = []
    bulk_insert = postgres.Connection._copy_insert

    def counted(self: postgres.Connection, bulk: Any, batch: list[list[Any]]) -> None:
        copies.append(bulk["table"])
        bulk_insert(self, bulk, batch)

    monkeypatch.setattr(postgres.Connection, "_copy_insert", counted)
    one_by_one = _rows_after(new_database(), False, monkeypatch)
    assert copies == []

    assert _rows_after(new_database(), True, monkeypatch) == one_by_one
    assert copies == ["kv", "firsts", "log"]


def test_twenty_five_thousand_verdicts_are_recorded_and_loaded(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """A run's verdicts past one COPY and past one ANY(...) array of keys all come back."""
    now = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    results = [
        LinkResult(f"http://h{n % 50}/p/{n}", LinkStatus.OK, 200, checked_at=now) for n in range(25_000)
    ]
    with HistoryStore(tmp_path / "unused", url=new_database()) as store:
        store.record(results, "r1", now)
        store.record(results[:3], "r2", now)
        loaded = store.load([r.url for r in results])

    assert len(loaded) == 25_000
    assert loaded[results[0].url].recent == ("ok", "ok") and loaded[results[-1].url].recent == ("ok",)


def test_two_runs_on_one_postgres_history_never_overlap(
    new_database: Callable[[], str], local_site: LocalSite, tmp_path: Path
) -> None:
    """Two machines sharing a history each have their own state folder, so their lock files cannot keep
    their runs apart: a second run while the first checks is exit 4, naming the first's host and pid; once
    the first has ended, it runs."""
    local_site.route("/slow", body=b"ok", delay=4.0)
    url = new_database()
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    corpus = first_dir / "corpus"
    corpus.mkdir()
    (corpus / "slow.md").write_text(
        f'---\ntitle: s\nwebUrl: "{local_site.url("/slow")}"\n---\n', encoding="utf-8"
    )
    first_config = _config(first_dir, corpus, state={"dir": str(first_dir / "state"), "url": url})
    second_config = _config(
        second_dir, _offline_corpus(second_dir), state={"dir": str(second_dir / "state"), "url": url}
    )

    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "--quiet", "--config", str(first_config)],
        cwd=first_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not local_site.count("/slow"):  # the first run is checking: it holds the history
            assert first.poll() is None and time.monotonic() < deadline, first.stderr
            time.sleep(0.05)
        refused = _cli("refresh", "--config", str(second_config), cwd=second_dir)
    finally:
        _, first_err = first.communicate(timeout=60)
    after = _cli("refresh", "--config", str(second_config), cwd=second_dir)

    assert refused.returncode == ExitCode.LOCKED, refused.stderr
    _one_line_error(refused.stderr, "holds the run lock", f"pid {first.pid}", "127.0.0.1")
    assert first.returncode == ExitCode.OK, first_err
    assert after.returncode == ExitCode.OK, after.stderr
    with HistoryStore(tmp_path / "unused", url=url, read_only=True) as store:
        assert len(store.list_runs(5)) == 2  # the first run and the one after it; the refused one left none
