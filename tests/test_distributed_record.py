"""How a worker records its observations and the coordinator reads them back, on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from celeryworkers import celery_settings

from pipeline.distributed import codec
from pipeline.distributed.coordinator import _Dispatch
from pipeline.distributed.observed import Shared
from pipeline.distributed.tasks import _Recorder
from pipeline.errors import EngineUnavailable
from pipeline.extract.pages import PageReader
from pipeline.models import FetchedPage, Observation, Outcome

_HTML = b"<html><head><title>A title</title><meta name=description content='About it'></head></html>"


@pytest.fixture
def shared(database: str) -> Iterator[Shared]:
    connection = Shared(database, 5)
    yield connection
    connection.close()


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


def _observations() -> list[Observation]:
    page = FetchedPage("http://h/a", "http://h/a", "text/html", {"etag": '"e1"'}, _HTML)
    return [
        Observation("http://h/a", Outcome.SUCCESS, 200, "http://h/a", host="h:80", page=page),
        Observation("http://h/b", Outcome.SUCCESS, 200, "http://h/b", host="h:80"),
        Observation("http://h/i.png", Outcome.HARD, 404, "http://h/i.png", reason="404", host="h:80"),
        Observation("http://h/c", Outcome.SOFT, reason="refused", network_level=True, host="h:80"),
    ]


def test_a_closed_dispatch_records_nothing_and_says_so(shared: Shared) -> None:
    """A batch for a dispatch the coordinator closed adds no row and no count, and tells the worker."""
    shared.open_job("open")

    assert shared.record("open", [("http://h/a", "a")], 0) is True
    assert shared.record("gone", [("http://h/a", "a")], 0) is False
    assert shared.observations("gone") == [] and shared.progress("gone") == (0, 0)
    assert shared.progress("open") == (1, 0)


def test_rows_come_back_as_they_were_written(shared: Shared) -> None:
    """URLs and texts with quotes, backslashes, control characters and non-ASCII letters survive a batch."""
    shared.open_job("j")
    rows = [
        ('http://h/é?q="x"\\', 'a "quoted" \\ \t\n text'),
        ("http://h/b", "[2,{}]"),
        ("http://h/ü", "ü\u2028"),
    ]

    assert shared.record("j", rows)
    assert sorted(data for _, data in shared.observations("j")) == sorted(data for _, data in rows)
    assert shared.observed("j", [url for url, _ in rows]) == {url for url, _ in rows}


def test_recorded_rows_equal_what_the_local_page_reader_digests(shared: Shared) -> None:
    """Every observation, digested or recorded straight from the checker, comes back as the local reader's
    results: the page's metadata and validators, the dead image's probe, nothing for the others."""
    shared.open_job("j")
    stop = threading.Event()
    recorder = _Recorder(shared, "j", 0, "w1@box", stop)
    pages, images = {"http://h/a", "http://h/c"}, {"http://h/i.png"}
    with PageReader(set(pages), set(images), _Silent(), recorder) as reader:
        recorder.reader = reader
        for obs in _observations():
            recorder.direct(obs)
        reader.drain()
    recorder.finish()
    with PageReader(set(pages), set(images), _Silent()) as local:
        for obs in _observations():
            local(obs)
        local.drain()

    rows = {r.observation.url: r for r in (codec.decode(text) for _, text in shared.observations("j"))}
    assert set(rows) == {obs.url for obs in _observations()}
    for obs in _observations():
        record = rows[obs.url]
        assert record.observation == Observation(**{**_fields(obs), "page": None})
        assert (record.page, record.validators, record.probe, record.worker) == (
            local.pages.get(obs.url),
            local.validators.get(obs.url),
            local.probes.get(obs.url),
            "w1@box",
        )
    assert rows["http://h/a"].page is not None and rows["http://h/i.png"].probe is not None
    assert shared.progress("j") == (4, 0) and not stop.is_set()


def _fields(obs: Observation) -> dict[str, object]:
    return {name: getattr(obs, name) for name in Observation.__dataclass_fields__}


def test_the_checker_never_waits_on_a_slow_database(database: str, shared: Shared) -> None:
    """While another session locks the observations table, recording 2,000 observations still returns at
    once (the writes wait on their own thread); once the lock goes, every row is written, counted once."""
    shared.open_job("j")
    recorder = _Recorder(shared, "j", 0, "w", threading.Event())
    with psycopg.connect(database) as locker, PageReader(set(), set(), _Silent(), recorder) as reader:
        recorder.reader = reader
        locker.execute("LOCK TABLE dist_observations IN EXCLUSIVE MODE")  # held until the commit below
        checker = threading.Thread(
            target=lambda: [
                recorder.direct(Observation(f"http://h/{n}", Outcome.SUCCESS, 200)) for n in range(2000)
            ]
        )
        checker.start()
        checker.join(timeout=30)
        assert not checker.is_alive(), "the checker's thread waited on the database"
        with psycopg.connect(database) as reading:  # the recorder's own connection waits on the lock
            assert reading.execute("SELECT count(*) FROM dist_counts").fetchone() == (0,)
        locker.commit()
    recorder.finish()

    assert shared.progress("j") == (2000, 0)
    assert len(shared.observations("j", limit=5000)) == 2000


def test_a_row_that_commits_after_a_later_one_is_still_collected(
    database: str, shared: Shared, tmp_path: Path
) -> None:
    """A worker's row numbered before one already read back (its transaction committed later) is not lost:
    the coordinator finds it by URL."""
    dispatch = _Dispatch(celery_settings(tmp_path, "redis://127.0.0.1:9/0", database), None)
    try:
        dispatch.shared.open_job(dispatch.job)
        late = codec.encode(codec.Observed(Observation("http://h/late", Outcome.SUCCESS, 200)))
        early = codec.encode(codec.Observed(Observation("http://h/early", Outcome.SUCCESS, 200)))
        with psycopg.connect(database) as slow:
            slow.execute(  # takes its arrival number now, commits at the end of the block
                "INSERT INTO dist_observations (job, url, data) VALUES (%s, %s, %s)",
                (dispatch.job, "http://h/late", late),
            )
            shared.record(dispatch.job, [("http://h/early", early)])
            dispatch.gather()
            assert set(dispatch.found) == {"http://h/early"}
        dispatch.gather()
        assert set(dispatch.found) == {"http://h/early"}  # numbered before the last row read: not seen

        found = dispatch.collect(["http://h/early", "http://h/late"])

        assert set(found) == {"http://h/early", "http://h/late"}
        assert found["http://h/late"].observation.url == "http://h/late"
    finally:
        dispatch.close()


def test_a_shard_a_worker_could_not_check_ends_the_wait(database: str, tmp_path: Path) -> None:
    """A shard recorded with its error ends the coordinator's wait with that error while other shards are
    still out, whether or not rows arrived beside it."""
    dispatch = _Dispatch(celery_settings(tmp_path, "redis://127.0.0.1:9/0", database), None)
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            dispatch.wait([{"shard": 0}, {"shard": 1}, {"shard": 2}], None)
        except BaseException as exc:
            raised.append(exc)

    try:
        dispatch.shared.open_job(dispatch.job)
        row = codec.encode(codec.Observed(Observation("http://h/a", Outcome.SUCCESS, 200)))
        dispatch.shared.record(dispatch.job, [("http://h/a", row)], 0)
        dispatch.shared.finish_shard(dispatch.job, 0, "[]")
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(0.5)  # polls that see nothing new
        dispatch.shared.finish_shard(dispatch.job, 1, "[]", "ValueError: boom")
        waiter.join(timeout=4)  # far less than the stall limit and the broker's check
        assert not waiter.is_alive(), "the wait went on past the shard's error"
        assert len(raised) == 1 and isinstance(raised[0], EngineUnavailable)
        assert "shard 1: ValueError: boom" in str(raised[0])
        assert "http://h/a" in dispatch.found
    finally:
        dispatch.close()


def test_a_row_the_database_refuses_stops_the_check_and_reaches_the_task(shared: Shared) -> None:
    """A write failing for another reason than a lost connection (a NUL the database refuses in a text
    value) still stops the check and is raised by finish(): the shard fails clearly, no batch is lost."""
    shared.open_job("j")
    stop = threading.Event()
    recorder = _Recorder(shared, "j", 0, "w", stop)
    with PageReader(set(), set(), _Silent(), recorder) as reader:
        recorder.reader = reader
        for n in range(600):
            recorder.direct(
                Observation(f"http://h/{n}\x00" if n == 3 else f"http://h/{n}", Outcome.SUCCESS, 200)
            )
        with pytest.raises(psycopg.DataError):
            recorder.finish()
    assert stop.is_set()


def test_a_task_starting_never_waits_on_another_workers_open_batch(database: str, shared: Shared) -> None:
    """Opening the dispatch tables once they exist takes no table lock: another worker's uncommitted batch
    does not hold up a task that starts meanwhile."""
    shared.open_job("j")
    opened: dict[str, object] = {}

    def open_tables() -> None:
        try:
            opened["connection"] = Shared(database, 5)
        except Exception as exc:  # the DDL's lock wait ran into the statement timeout
            opened["error"] = exc

    with psycopg.connect(database) as other:  # a transaction left open, as a batch in flight
        other.execute("INSERT INTO dist_observations (job, url, data) VALUES ('j', 'http://h/x', '[]')")
        started = time.monotonic()
        opener = threading.Thread(target=open_tables, daemon=True)
        opener.start()
        opener.join(timeout=3)
        waited = time.monotonic() - started
        other.rollback()
    opener.join(timeout=10)
    connection = opened.get("connection")
    if isinstance(connection, Shared):
        connection.close()
    assert "error" not in opened and waited < 3
