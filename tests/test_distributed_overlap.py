"""executor: celery: the coordinator's own work overlapped with the read pass, on real parts (PostgreSQL,
Redis and `pipeline worker` processes on loopback)."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery.signals import worker_process_init
from celeryworkers import worker_config, workers
from localsite import LocalSite, make_settings
from redisserver import redis_server
from test_refresh import _article, _serve_world

from pipeline import runner
from pipeline.check import http
from pipeline.config import HttpSettings, Settings
from pipeline.configfile import parse_settings
from pipeline.distributed import prepared
from pipeline.distributed.app import build_app
from pipeline.engineconfig import CelerySettings
from pipeline.models import ExitCode, RunOptions

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A Redis of its own: conftest's is flushed per test, which would drop the queues' bindings."""
    with redis_server() as server:
        yield server.url


def _celery(folder: Path, corpus: Path, broker: str, database: str, wait: float = 20) -> Settings:
    data = make_settings(folder, corpus={"roots": [str(corpus)]}).model_dump(mode="json")
    data["executor"] = "celery"
    data["celery"] = {"broker_url": broker, "wait_timeout": wait, "visibility_timeout": 30}
    data["state"]["url"] = database
    return parse_settings(data)


def _jobs(database: str) -> int:
    with psycopg.connect(database) as db:
        row = db.execute("SELECT count(*) FROM dist_jobs").fetchone()
    return int(row[0]) if row else 0


def _wait_for_job(database: str, seconds: float) -> bool:
    """Whether a dispatch is open in the database within ``seconds`` (its table may not exist yet)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if _jobs(database):
                return True
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.1)
    return False


def test_the_dispatch_is_made_ready_while_the_corpus_is_read(
    broker: str, database: str, local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker, the database's dispatch and the workers' count are made ready during the read pass,
    and the run still completes as usual."""
    _serve_world(local_site)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "park.md").write_text(_article(local_site), encoding="utf-8")
    settings = _celery(tmp_path, corpus, broker, database)
    seen_during_read: list[bool] = []
    real_collect = runner.collect

    def collect(*args: Any, **kwargs: Any) -> Any:
        seen_during_read.append(_wait_for_job(database, 20.0))  # the read pass is held until then
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(runner, "collect", collect)
    folder = tmp_path / "workers"
    folder.mkdir()
    with workers(worker_config(folder, broker, database), 1, folder):
        outcome = runner.refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO())

    assert seen_during_read == [True]
    assert outcome.exit_code is ExitCode.OK
    totals = outcome.report.totals
    assert (totals.checked, totals.count("ok"), totals.count("failing"), totals.changes) == (7, 4, 3, 3)
    assert _jobs(database) == 0  # the dispatch was closed


def test_a_dispatch_nobody_takes_is_closed(
    broker: str, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with nothing to check leaves no open dispatch behind (made ready, never taken)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "plain.md").write_text('---\ntitle: "No links"\n---\nbody\n', encoding="utf-8")
    settings = _celery(tmp_path, corpus, broker, database)
    opened: list[bool] = []
    real_collect = runner.collect

    def collect(*args: Any, **kwargs: Any) -> Any:
        opened.append(_wait_for_job(database, 20.0))  # the dispatch is ready before the run ends
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(runner, "collect", collect)
    folder = tmp_path / "workers"
    folder.mkdir()
    with workers(worker_config(folder, broker, database), 1, folder):
        outcome = runner.refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO())

    assert opened == [True] and outcome.exit_code is ExitCode.OK
    assert _jobs(database) == 0


def test_workers_that_start_after_the_prepared_wait_ran_out_still_take_the_check(
    broker: str, database: str, local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker answered while the corpus was read (the prepared dispatch's wait ran out): the check tries
    again with a wait of its own, so workers started meanwhile take it and the run completes."""
    _serve_world(local_site)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "park.md").write_text(_article(local_site), encoding="utf-8")
    settings = _celery(tmp_path, corpus, broker, database, wait=1)
    folder = tmp_path / "workers"
    folder.mkdir()
    real_collect = runner.collect
    with contextlib.ExitStack() as later:

        def collect(*args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + 30
            while any(t.name == "dispatch-setup" for t in threading.enumerate()):  # its wait runs out
                assert time.monotonic() < deadline
                time.sleep(0.1)
            later.enter_context(workers(worker_config(folder, broker, database), 1, folder))
            return real_collect(*args, **kwargs)

        monkeypatch.setattr(runner, "collect", collect)
        outcome = runner.refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO())

    assert outcome.exit_code is ExitCode.OK
    assert outcome.report.totals.checked == 7


def test_a_workers_new_pool_process_makes_its_tls_context_before_its_first_shard() -> None:
    """A worker's app makes each new pool process build the default settings' TLS context at its start,
    the one its shards' transports then take (the CA store is not loaded on a shard's path)."""
    http._contexts.clear()
    build_app(CelerySettings(broker_url="redis://127.0.0.1:9/0"), "postgresql://127.0.0.1:9/history")

    worker_process_init.send(sender=None)

    made = [context for _, context in http._contexts.values()]
    assert len(made) == 1 and http._ssl_context(HttpSettings()) is made[0]


def test_a_prepared_dispatch_that_failed_unneeded_says_why_and_is_taken_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that needed no dispatch still logs a failure that is no engine outage (a bug must not pass
    unseen), and a second take() is a clear error, not a misleading exit 9."""

    def broken(settings: Settings, stop: object) -> Any:
        raise ValueError("a bug while making the dispatch")

    monkeypatch.setattr(prepared, "_ready", broken)
    made = prepared.Prepared(make_settings(tmp_path), None)
    with pytest.raises(ValueError):
        made.take()
    with pytest.raises(RuntimeError, match="taken already"):
        made.take()
    unneeded = prepared.Prepared(make_settings(tmp_path), None)
    with caplog.at_level("WARNING", logger="pipeline"):
        unneeded.close()
    assert "a bug while making the dispatch" in caplog.text
