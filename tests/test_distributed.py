"""executor: celery on real parts: PostgreSQL and Redis on loopback, 3 real `pipeline worker` processes."""

from __future__ import annotations

import io
import logging
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celeryworkers import NoProgress, fresh_database, worker_config, workers
from localsite import LocalSite, closed_port, make_settings
from rabbitserver import rabbit_server
from redisserver import redis_server
from test_refresh import HTML, _article, _serve_world
from test_runs import _cli, _config, _one_line_error

from pipeline.config import Settings
from pipeline.configfile import parse_settings
from pipeline.distributed.coordinator import _Dispatch, check_remote
from pipeline.distributed.observed import Shared
from pipeline.distributed.sharding import shard_host, shards
from pipeline.errors import ConfigError
from pipeline.extract.pages import PageReader
from pipeline.models import ExitCode, RunOptions, host_key
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A Redis of its own: conftest's is flushed per test, which would drop the queues' bindings."""
    with redis_server() as server:
        yield server.url


@pytest.fixture
def engine(broker: str, database: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """3 real workers on the broker and database; yields (broker URL, database URL, their logs' folder)."""
    folder = tmp_path / "workers"
    folder.mkdir()
    with workers(worker_config(folder, broker, database), 3, folder):
        yield broker, database, folder


@pytest.fixture
def amqp_engine(broker: str, database: str, tmp_path: Path) -> Iterator[tuple[str, str, Path, str]]:
    """3 real workers on a RabbitMQ broker, their leases in Redis; yields (broker, database, logs, leases)."""
    folder = tmp_path / "workers"
    folder.mkdir()
    with (
        rabbit_server() as rabbit,
        workers(worker_config(folder, rabbit.url, database, lease_url=broker), 3, folder),
    ):
        yield rabbit.url, database, folder, broker


def _checked_by_workers(folder: Path) -> int:
    """URLs the workers say they checked (their log lines)."""
    found = re.findall(r"shard \d+ of \w+: (\d+) URLs checked", _logs(folder))
    return sum(map(int, found))


def _workers_that_checked(folder: Path) -> int:
    """How many worker processes checked at least one URL (each logs to its own file)."""
    return sum(
        bool(re.search(r"shard \d+ of \w+: [1-9]\d* URLs checked", path.read_text(errors="replace")))
        for path in folder.glob("worker*.log")
    )


def _logs(folder: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("worker*.log")))


def _celery(settings: Settings, broker: str, database: str, leases: str | None = None) -> Settings:
    data = settings.model_dump(mode="json")
    data["executor"] = "celery"
    data["celery"] = {"broker_url": broker, "wait_timeout": 20, "visibility_timeout": 30, "lease_url": leases}
    data["state"]["url"] = database
    return parse_settings(data)


def _run(settings: Settings) -> dict[str, Any]:
    options = RunOptions(now=lambda: DAY0, show_progress=False)
    outcome = refresh(settings, options, io.StringIO())
    assert outcome.exit_code is ExitCode.OK
    return outcome.report.to_json()


def _world(site: LocalSite, folder: Path) -> Path:
    """The end-to-end world of test_refresh, twice over (more URLs, on all four hosts)."""
    _serve_world(site)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "park.md").write_text(_article(site), encoding="utf-8")
    other = _article(site).replace("127.0.0.10", "127.0.0.12").replace("127.0.0.11", "127.0.0.13")
    (corpus / "other.md").write_text(other, encoding="utf-8")
    (corpus / "untouched.md").write_text('---\ntitle: "No links"\nyes: on\n---\nbody\n', encoding="utf-8")
    return corpus


def _verdicts(report: dict[str, Any]) -> dict[str, Any]:
    return {row["url"]: (row["status"], row.get("http_status"), row.get("reason")) for row in report["links"]}


def _changes(report: dict[str, Any]) -> list[Any]:
    return sorted(repr({**change, "article": Path(change["article"]).name}) for change in report["changes"])


def _files(corpus: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(corpus.iterdir())}


def test_celery_run_equals_the_local_run(
    engine: tuple[str, str, Path], local_site: LocalSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same corpus and local web give the same verdicts, changes and article bytes on 3 workers."""
    _assert_equal_runs(*engine, None, local_site, tmp_path, caplog)


def test_celery_run_on_rabbitmq_equals_the_local_run(
    amqp_engine: tuple[str, str, Path, str],
    local_site: LocalSite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same with RabbitMQ as the broker (``amqp://``) and the per-host leases in Redis."""
    _assert_equal_runs(*amqp_engine, local_site, tmp_path, caplog)


def _assert_equal_runs(
    broker: str,
    database: str,
    logs: Path,
    leases: str | None,
    local_site: LocalSite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline")
    corpus = _world(local_site, tmp_path / "local")
    page = b"<html><head><title>Access denied</title></head></html>"
    local_site.route("/walled", body=page, headers=HTML)  # a page refused for metadata, on every host
    walled = "".join(f'  - webUrl: "{local_site.url("/walled", host)}"\n' for host in range(4))
    (corpus / "walled.md").write_text(f"---\ntitle: Walled\nrelated:\n{walled}---\n", encoding="utf-8")
    shutil.copytree(corpus, tmp_path / "celery" / "corpus")
    sections: dict[str, dict[str, object]] = {"health": {"hard": {"runs": 1, "days": 0}}}
    local = make_settings(tmp_path / "local", corpus={"roots": [str(corpus)]}, **sections)
    remote = _celery(
        make_settings(
            tmp_path / "celery", corpus={"roots": [str(tmp_path / "celery" / "corpus")]}, **sections
        ),
        broker,
        database,
        leases,
    )

    local_report = _run(local)
    requests_local = len(local_site.hits)
    remote_report = _run(remote)

    assert _verdicts(remote_report) == _verdicts(local_report)
    assert _changes(remote_report) == _changes(local_report) and local_report["changes"]
    refused = sorted(map(repr, local_report["refused_pages"]))
    assert sorted(map(repr, remote_report["refused_pages"])) == refused and len(refused) == 4
    assert remote_report["politeness"] == local_report["politeness"]
    assert _files(tmp_path / "celery" / "corpus") == _files(corpus)
    assert len(local_site.hits) == 2 * requests_local  # every URL once more, no request twice
    assert _checked_by_workers(logs) >= len(remote_report["links"])  # the workers did every check
    assert "in 3 shards for 3 worker processes" in caplog.text  # 4 hosts, one shard per process
    assert _workers_that_checked(logs) >= 2  # the work spread over the workers
    assert f"transport:   {broker.split('://')[0]}://" in _logs(logs)  # on the broker asked for
    with psycopg.connect(database) as db:  # the coordinator read the workers' rows back and removed them
        assert db.execute("SELECT count(*) FROM dist_observations").fetchone() == (0,)


def test_celery_needs_a_postgres_history(tmp_path: Path) -> None:
    """executor: celery without state.url is a configuration error that says why."""
    with pytest.raises(ConfigError, match=r"executor: celery needs state\.url: postgresql://"):
        parse_settings({"executor": "celery"})


def test_per_host_cap_holds_across_workers_when_a_task_is_handed_out_twice(
    broker: str, database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """A task redelivered while its first copy still runs waits on the host leases: never above the cap."""
    folder = tmp_path / "workers"
    folder.mkdir()
    # One host: one shard, so two workers are idle when the broker hands its task out again.
    paths = [f"/slow/{n}" for n in range(24)]
    for path in paths:
        local_site.route(path, status=200, delay=0.5)
    urls = [local_site.url(path) for path in paths]
    settings = _celery(
        make_settings(tmp_path, http={"per_host_concurrency": 2, "soft404_probe": False}), broker, database
    )
    settings = settings.model_copy(
        update={"celery": settings.celery.model_copy(update={"visibility_timeout": 1.0, "lease_ttl": 2.0})}
    )
    config = worker_config(folder, broker, database, visibility_timeout=1.0, lease_ttl=2.0)

    with workers(config, 3, folder), PageReader(set(), set(), NoProgress()) as digest:
        observations = check_remote(urls, settings, digest, fetch_body={})
        logs = _logs(folder)

    assert {obs.outcome.value for obs in observations.values()} == {"success"}
    assert max(local_site.max_inflight.values()) == 2  # the cap, reached, never passed
    assert "waiting for host leases another task holds" in logs  # a second copy did run beside the first
    assert len(local_site.hits) == len(urls)  # and requested nothing: each URL once


def _coordinator(tmp_path: Path, site: LocalSite, state: dict[str, object], broker_url: str) -> Path:
    corpus = _world(site, tmp_path)
    celery = {"broker_url": broker_url, "wait_timeout": 2}
    return _config(tmp_path, corpus, state=state, executor="celery", celery=celery)


def _history_runs(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*) FROM runs").fetchone()
    return int(row[0]) if row else 0


def test_an_unreachable_broker_is_exit_9_and_touches_nothing(
    database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """No broker at celery.broker_url: after wait_timeout, exit 9 naming it (password masked), files and
    history untouched."""
    broker_url = f"redis://:secret@127.0.0.1:{closed_port()}/0"
    config = _coordinator(tmp_path, local_site, {"dir": str(tmp_path / "state"), "url": database}, broker_url)
    before = _files(tmp_path / "corpus")

    result = _cli("refresh", "--config", str(config), cwd=tmp_path)

    assert result.returncode == ExitCode.ENGINE_UNAVAILABLE, result.stderr
    _one_line_error(result.stderr, "the broker redis://:***@127.0.0.1:", "cannot be reached for 2 s")
    assert "secret" not in result.stderr
    assert _files(tmp_path / "corpus") == before
    assert _history_runs(database) == 0  # the run that could not check anything left no row
    assert not local_site.hits


def test_no_worker_is_exit_9_saying_so(
    broker: str, database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """A broker with no worker on it: after wait_timeout, exit 9 saying no worker answered."""
    config = _coordinator(tmp_path, local_site, {"dir": str(tmp_path / "state"), "url": database}, broker)
    before = _files(tmp_path / "corpus")

    result = _cli("refresh", "--config", str(config), "--executor", "celery", cwd=tmp_path)

    assert result.returncode == ExitCode.ENGINE_UNAVAILABLE, result.stderr
    _one_line_error(result.stderr, "engine unavailable: no worker answered on redis://127.0.0.1:")
    assert _files(tmp_path / "corpus") == before
    assert _history_runs(database) == 0


def test_a_worker_on_another_history_database_is_exit_9_naming_it(
    broker: str, pg: str, database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """A worker whose state.url names another database would drop every task as if the run were over: the
    coordinator asks before its dispatch and stops at once, naming the worker, touching nothing."""
    folder = tmp_path / "workers"
    folder.mkdir()
    other = fresh_database(pg, "stray_history")
    config = _coordinator(tmp_path, local_site, {"dir": str(tmp_path / "state"), "url": database}, broker)
    before = _files(tmp_path / "corpus")

    with workers(worker_config(folder, broker, other), 1, folder, "-n", "stray@%h"):
        started = time.monotonic()
        result = _cli("refresh", "--config", str(config), "--executor", "celery", cwd=tmp_path)
        took = time.monotonic() - started

    assert result.returncode == ExitCode.ENGINE_UNAVAILABLE, result.stderr
    _one_line_error(
        result.stderr, "the history database of worker stray@", "does not hold this run's dispatch"
    )
    assert took < 30  # not the minutes of a stall and its resends
    assert _files(tmp_path / "corpus") == before
    assert _history_runs(database) == 0
    assert not local_site.hits


def test_workers_on_different_lease_servers_are_exit_9_saying_so(
    broker: str, database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """Two workers keeping their host leases in two Redis servers would each keep a host's cap alone: the
    run refuses them before its dispatch."""
    folder, second = tmp_path / "workers", tmp_path / "workers2"
    folder.mkdir()
    second.mkdir()
    config = _coordinator(tmp_path, local_site, {"dir": str(tmp_path / "state"), "url": database}, broker)

    with (
        redis_server() as leases,
        workers(worker_config(folder, broker, database), 1, folder, "-n", "own@%h"),
        workers(worker_config(second, broker, database, lease_url=leases.url), 1, second, "-n", "apart@%h"),
    ):
        result = _cli("refresh", "--config", str(config), "--executor", "celery", cwd=tmp_path)

    assert result.returncode == ExitCode.ENGINE_UNAVAILABLE, result.stderr
    _one_line_error(result.stderr, "keep their host leases in 2 different Redis servers", "apart@")
    assert not local_site.hits


def test_executor_flag_overrides_the_config_and_celery_needs_postgres(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """`--executor celery` over a SQLite history is a configuration error (exit 3) that says why."""
    config = _config(tmp_path, _world(local_site, tmp_path))

    result = _cli("refresh", "--config", str(config), "--executor", "celery", cwd=tmp_path)

    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert "executor: celery needs state.url: postgresql://" in result.stderr


def test_a_worker_without_a_postgres_history_refuses_to_start(tmp_path: Path) -> None:
    """`pipeline worker` with no state.url: exit 3 naming the key, no Celery started."""
    config = tmp_path / "worker.yaml"
    config.write_text("celery: {broker_url: 'redis://127.0.0.1:9/0'}\n", encoding="utf-8")

    result = _cli("worker", "--config", str(config), cwd=tmp_path)

    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert "state.url: pipeline worker needs a postgresql://" in result.stderr


def test_an_observation_recorded_twice_counts_once(database: str) -> None:
    """Two deliveries of a task recording the same URL leave one row, the first."""
    shared = Shared(database, 5)
    try:
        shared.open_job("j")
        shared.record("j", [("http://h/a", "first"), ("http://h/b", "b")])
        shared.record("j", [("http://h/a", "second")])

        assert sorted(data for _, data in shared.observations("j")) == ["b", "first"]
        assert shared.progress("j") == (2, 0)
        assert shared.observed("j", ["http://h/a", "http://h/c"]) == {"http://h/a"}
    finally:
        shared.close()


def test_many_workers_opening_a_fresh_database_at_once_do_not_race(database: str) -> None:
    """Eight connections creating the shared tables at the same moment all succeed."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            Shared(database, 5).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_shards_keep_hosts_whole_and_fill_a_workers_pool() -> None:
    """Hosts are never split; no shard holds more host slots than a worker's pool (400 slots / 16 = 25
    shards of 40 URLs), at least one shard per worker process as hosts allow, never more than hosts."""
    urls = [f"http://h{host}.test/{n}" for host in range(50) for n in range(20)]

    groups = shards(urls, per_host=8, pool=16)

    assert sorted(map(len, groups)) == [40] * 25
    for host in range(50):
        assert sum(any(f"//h{host}.test/" in url for url in group) for group in groups) == 1
    assert sorted(url for group in groups for url in group) == sorted(urls)
    assert len(shards(urls, per_host=8, pool=1000)) == 1  # one process: never queued behind itself
    assert len(shards(urls, per_host=8, pool=1000, processes=16)) == 16  # a small run spreads over them
    assert len(shards(urls[:60], per_host=8, pool=1000, processes=16)) == 3  # never more than hosts


def test_shards_come_in_whole_rounds_of_the_worker_processes() -> None:
    """More pool-fulls than processes: a multiple of the processes (25 pool-fulls on 4 processes are 24
    shards, 6 rounds, not 25 in 7 with one shard alone in the last), hosts still whole."""
    urls = [f"http://h{host}.test/{n}" for host in range(50) for n in range(20)]

    groups = shards(urls, per_host=8, pool=16, processes=4)

    assert len(groups) == 24
    for host in range(50):
        assert sum(any(f"//h{host}.test/" in url for url in group) for group in groups) == 1
    assert len(shards(urls, per_host=8, pool=16, processes=3)) == 24
    assert len(shards(urls, per_host=8, pool=16, processes=7)) == 21
    assert len(shards(urls, per_host=8, pool=16)) == 25  # one process: every shard fills its pool


def test_one_host_name_is_one_shard_whatever_its_scheme_or_port() -> None:
    """http://h, https://h and h:8080 are one server's budget: one shard, one lease (its name)."""
    urls = [
        f"{scheme}://h{n}.test{port}/a"
        for n in range(20)
        for scheme, port in [("http", ""), ("https", ""), ("http", ":8080")]
    ]

    groups = shards(urls, per_host=8, pool=16)

    for n in range(20):
        assert sum(any(f"//h{n}.test" in url for url in group) for group in groups) == 1
    assert shard_host("HTTPS://H1.test:443/x") == "h1.test" and shard_host("http://h:x/") is None


def test_a_broker_lost_before_the_image_probes_saves_the_run_as_interrupted(
    database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """The broker dies after the link check, before the image probes: exit 9, no article written, and the
    run (its verdicts recorded) is saved as interrupted with code 9, not left half-recorded."""
    corpus = _world(local_site, tmp_path)
    before = _files(corpus)
    folder = tmp_path / "workers"
    folder.mkdir()
    with redis_server() as server, workers(worker_config(folder, server.url, database), 1, folder):
        settings = _celery(make_settings(tmp_path, corpus={"roots": [str(corpus)]}), server.url, database)
        settings = settings.model_copy(
            update={"celery": settings.celery.model_copy(update={"wait_timeout": 2.0})}
        )

        def now() -> datetime:
            if sys._getframe(1).f_code.co_name == "check_pass":  # the link check is over: the broker dies
                server.kill()
            return DAY0

        outcome = refresh(settings, RunOptions(now=now, show_progress=False), io.StringIO())

    assert outcome.exit_code is ExitCode.ENGINE_UNAVAILABLE
    assert _files(corpus) == before
    with psycopg.connect(database) as db:
        assert db.execute("SELECT kind, exit_code FROM runs").fetchall() == [("interrupted", 9)]
        assert db.execute("SELECT count(*) FROM links").fetchone() == (len(outcome.report.links),)


def test_a_broker_restarted_empty_mid_run_gets_the_lost_shards_again(
    database: str,
    local_site: LocalSite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis restarted without its queue while a worker checks: the coordinator sends the unfinished shards
    again after the stall limit, and the run completes with the embedded run's verdicts."""
    # Shards queued behind the one being checked: as when workers that were counted have gone since.
    monkeypatch.setattr(_Dispatch, "_processes", lambda self: 4)
    local_site.route("/held", body=b"ok", delay=1.5)
    corpus = _world(local_site, tmp_path / "celery")
    extra = "".join(f'  - webUrl: "{local_site.url("/held", host)}"\n' for host in range(2))
    (corpus / "held.md").write_text(f"---\ntitle: Held\nrelated:\n{extra}---\n", encoding="utf-8")
    shutil.copytree(corpus, tmp_path / "local" / "corpus")
    expected = _verdicts(
        _run(make_settings(tmp_path / "local", corpus={"roots": [str(tmp_path / "local" / "corpus")]}))
    )
    local_site.reset()
    local_site.route("/held", body=b"ok", delay=1.5)
    _serve_world(local_site)
    folder = tmp_path / "workers"
    folder.mkdir()
    with redis_server() as server:
        config = worker_config(folder, server.url, database)
        with workers(config, 1, folder):
            settings = _celery(
                make_settings(tmp_path / "celery", corpus={"roots": [str(corpus)]}), server.url, database
            )
            settings = settings.model_copy(
                update={
                    "celery": settings.celery.model_copy(
                        update={"visibility_timeout": 2.0, "wait_timeout": 8.0}
                    )
                }
            )
            result: list[dict[str, Any]] = []
            coordinator = threading.Thread(target=lambda: result.append(_run(settings)))
            coordinator.start()
            deadline = time.monotonic() + 60
            while not local_site.count("/held") and time.monotonic() < deadline:
                time.sleep(0.02)
            server.kill()  # no persistence: the queued shards are gone
            server.start()
            coordinator.join(timeout=120)

    assert result and _verdicts(result[0]) == expected
    assert any("sending the" in record.getMessage() for record in caplog.records)  # it was a resend


def test_database_connections_cut_mid_run_are_made_again_and_the_run_completes(
    database: str, broker: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """The server ends every session (coordinator's, workers') while a worker checks: all reconnect (the
    worker's task goes back to the queue) and the run completes with the embedded run's verdicts."""
    local_site.route("/held", body=b"ok", delay=1.5)
    corpus = _world(local_site, tmp_path / "celery")
    extra = "".join(f'  - webUrl: "{local_site.url("/held", host)}"\n' for host in range(2))
    (corpus / "held.md").write_text(f"---\ntitle: Held\nrelated:\n{extra}---\n", encoding="utf-8")
    shutil.copytree(corpus, tmp_path / "local" / "corpus")
    local_corpus = {"roots": [str(tmp_path / "local" / "corpus")]}
    expected = _verdicts(_run(make_settings(tmp_path / "local", corpus=local_corpus)))
    folder = tmp_path / "workers"
    folder.mkdir()
    with workers(worker_config(folder, broker, database), 2, folder):
        settings = _celery(
            make_settings(tmp_path / "celery", corpus={"roots": [str(corpus)]}), broker, database
        )
        result: list[dict[str, Any]] = []
        coordinator = threading.Thread(target=lambda: result.append(_run(settings)))
        coordinator.start()
        deadline = time.monotonic() + 60
        while local_site.count("/held") < 3 and time.monotonic() < deadline:  # the second run's first
            time.sleep(0.02)
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
        coordinator.join(timeout=120)
        logs = _logs(folder)

    assert result and _verdicts(result[0]) == expected
    assert "the history database went away" in logs  # a worker's task did go back to the queue


def test_shard_host_read_from_the_origin_equals_the_host_keys_name() -> None:
    """The shard host found from a URL's scheme and authority alone is the host key's name, for every
    form urlsplit treats apart (case, default ports, user info, IPv6, IDN, a query or fragment right after
    the host, no scheme, a bad port)."""
    urls = [
        "http://H/x", "HTTPS://H1.test:443/x", "http://h:x/", "http://h?x", "http://h#f", "http://u:p@H:80/a",
        "  http://h/a", "ht tp://h/x", "//h/x", "mailto:x@y", "http://[::1]:8080/a", "http://bücher.de/x",
        "http://h\t.test/x", "http://h:99999/", "https://h:/a", "http:/h/x", "file:///x", "http://a.b?c/d",
    ]  # fmt: skip

    for url in urls:
        try:
            expected: str | None = str(host_key(url)).rsplit(":", 1)[0]
        except ValueError:
            expected = None
        assert shard_host(url) == expected, url
