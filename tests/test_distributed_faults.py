"""Faults of the distributed engine with real parts: real `pipeline worker` processes killed with SIGKILL, a
real redis-server and PostgreSQL stopped under a running coordinator, and workers whose network fails.

Each test runs `pipeline refresh` (the coordinator) and its workers as subprocesses on a tmp corpus against
the loopback test site, whose held responses make a fault land while a task is running.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from celeryworkers import workers
from localsite import LocalSite, closed_port
from pgserver import PostgresServer, postgres_instance
from rabbitserver import rabbit_server
from redisserver import RedisServer, redis_server
from test_refresh import _article, _serve_world

pytestmark = pytest.mark.slow

_NAMES = itertools.count()
_RUN = 120.0  # seconds a whole coordinated run may take


# ---- the parts ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_instance() as server:
        yield server


def _new_database(server: PostgresServer) -> str:
    name = f"f{next(_NAMES)}"
    with psycopg.connect(f"{server.url}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{server.url}/{name}"


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    """A redis-server of this test alone (tests stop it)."""
    with redis_server() as server:
        yield server


def _log(folder: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("worker*.log")))


# ---- the world ----------------------------------------------------------------------------------------
def _config(folder: Path, corpus: Path, broker_url: str, state_url: str | None, **extra: Any) -> Path:
    """Celery executor on ``broker_url`` with the history at ``state_url`` (None: SQLite, the local run);
    a task whose worker died comes back after 3 s; the coordinator gives up after 5 s without an answer."""
    data: dict[str, Any] = {
        "executor": "celery" if state_url else "local",
        "celery": {"broker_url": broker_url, "visibility_timeout": 3, "lease_ttl": 5, "wait_timeout": 5},
        "corpus": {"roots": [str(corpus)]},
        "http": {"allow_networks": ["127.0.0.0/8"], "connect_timeout": 2, "read_timeout": 10},
        "retry": {"attempts": 1},
        "health": {"hard": {"runs": 1, "days": 0}, "archive": {"enabled": False}},
        "state": {"dir": str(folder / "state"), "url": state_url},
        "reports": {"dir": str(folder / "reports")},
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _slow_article(site: LocalSite) -> str:
    """An article on hosts 2 and 3: quick answers, /later after 1 s, /held after 3 s."""
    related = "".join(
        f'  - webUrl: "{site.url(path, host)}"\n'
        for host in (2, 3)
        for path in ("/quick1", "/quick2", "/gone", "/later", "/held")
    )
    return f'---\ntitle: "Slow"\nrelated:\n{related}---\nBody.\n'


def _world(site: LocalSite, folder: Path) -> Path:
    """The refresh tests' article (changes, dead links, images) plus one on held hosts; returns the corpus."""
    _serve_world(site)
    site.route("/quick1", body=b"ok")
    site.route("/quick2", body=b"ok")
    site.route("/later", body=b"ok", delay=1.0)
    site.route("/held", body=b"ok", delay=3.0)
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "park.md").write_text(_article(site), encoding="utf-8")
    (corpus / "slow.md").write_text(_slow_article(site), encoding="utf-8")
    (corpus / "untouched.md").write_text('---\ntitle: "No links"\n---\nbody\n', encoding="utf-8")
    return corpus


def _files(corpus: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(corpus.iterdir())}


def _coordinator(config: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "--config", str(config)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(run: subprocess.Popen[str], timeout: float = _RUN) -> tuple[int, str]:
    try:
        _, stderr = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        _, stderr = run.communicate()
        pytest.fail(f"the coordinator did not finish within {timeout} s: {stderr[-3000:]}")
    return run.returncode, stderr


def _wait_for(
    condition: Callable[[], bool], what: str, run: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if run.poll() is not None:
            pytest.fail(
                f"the coordinator exited {run.returncode} before {what}: {run.communicate()[1][-3000:]}"
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _statuses(folder: Path) -> dict[str, str]:
    report = json.loads((folder / "reports" / "latest" / "report.json").read_text(encoding="utf-8"))
    return {link["url"]: link["status"] for link in report["links"]}


def _link_rows(state_url: str) -> dict[str, tuple[int, list[str]]]:
    """url -> (consecutive failures, recent statuses) as the history holds them; {} before any run."""
    with psycopg.connect(state_url) as db:
        if db.execute("SELECT to_regclass('links')").fetchone() == (None,):
            return {}
        rows = db.execute("SELECT url, consecutive_failures, recent FROM links").fetchall()
    return {url: (int(failures or 0), json.loads(recent)) for url, failures, recent in rows}


def _observed(state_url: str, urls: list[str]) -> int:
    """How many of ``urls`` a worker has recorded an observation of, in any dispatch."""
    with psycopg.connect(state_url) as db:
        if db.execute("SELECT to_regclass('dist_observations')").fetchone() == (None,):
            return 0
        row = db.execute(
            "SELECT count(DISTINCT url) FROM dist_observations WHERE url = ANY(%s)", (urls,)
        ).fetchone()
    return int(row[0]) if row else 0


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if "ERROR" in line]


def _local_run(site: LocalSite, folder: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """The same world checked by the embedded executor: its verdicts and its article files."""
    folder.mkdir()
    corpus = _world(site, folder)
    config = _config(folder, corpus, "redis://127.0.0.1:9/0", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "refresh", "--config", str(config)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=_RUN,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _statuses(folder), _files(corpus)


# ---- a worker killed mid-task -------------------------------------------------------------------------
@contextlib.contextmanager
def _broker_of_kind(kind: str, redis: RedisServer) -> Iterator[dict[str, str]]:
    """The ``celery`` keys of a broker of ``kind``: the Redis itself, or a RabbitMQ with leases in it."""
    if kind == "redis":
        yield {"broker_url": redis.url}
    else:
        with rabbit_server() as rabbit:
            yield {"broker_url": rabbit.url, "lease_url": redis.url}


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_worker_killed_mid_task_is_redelivered_and_the_run_matches_an_unkilled_one(
    kind: str, local_site: LocalSite, broker: RedisServer, pg: PostgresServer, tmp_path: Path
) -> None:
    """kill -9 of the worker holding a task: the task comes back to another worker, the run completes with
    the verdicts and files of an unkilled run, and each URL's observation counts once in the history.
    With RabbitMQ too: there the task comes back when the dead worker's connection closes."""
    with _broker_of_kind(kind, broker) as celery:
        _kill_a_worker_mid_task(celery, local_site, pg, tmp_path)


def _kill_a_worker_mid_task(
    celery: dict[str, str], local_site: LocalSite, pg: PostgresServer, tmp_path: Path
) -> None:
    expected_statuses, expected_files = _local_run(local_site, tmp_path / "local")
    local_site.reset()
    state_url = _new_database(pg)
    folder = tmp_path / "celery"
    folder.mkdir()
    corpus = _world(local_site, folder)
    # Redelivery takes visibility_timeout plus the transport's sweep: the coordinator must wait longer.
    config = _config(folder, corpus, celery["broker_url"], state_url, celery={"wait_timeout": 60, **celery})
    first, second = folder / "first", folder / "second"
    first.mkdir()
    second.mkdir()
    with workers(config, 1, first) as [killed]:
        run = _coordinator(config, folder)
        held_hosts = (2, 3)  # one worker process: one shard, both slow hosts checked at once
        _wait_for(
            lambda: all(local_site.count("/held", host_index=h) for h in held_hosts), "held requests", run
        )
        answered = {"/quick1", "/quick2", "/gone", "/later"}
        _wait_for(
            lambda: all(
                answered <= {hit.path for hit in list(local_site.hits) if hit.host_index == host}
                for host in held_hosts
            ),
            "the held hosts' other answers",
            run,
        )
        # The worker records what it observed in batches at most 0.5 s old: kill it only once the
        # answered URLs are in the history (a fixed sleep lost the race on a loaded machine).
        recorded = [local_site.url(path, host_index=h) for h in held_hosts for path in answered]
        _wait_for(lambda: _observed(state_url, recorded) == len(recorded), "the answers recorded", run)
        os.killpg(killed.pid, signal.SIGKILL)  # the worker and its pool child, mid-task
        killed.wait()
        killed_at = time.monotonic()
        with workers(config, 1, second):
            code, stderr = _finish(run)

    assert code == 0, stderr[-3000:]
    # The killed task came back (visibility_timeout 3 s, not the transport's default sweep of ~100 s) to
    # the only worker left, which asked again only what the killed one had not recorded.
    assert time.monotonic() - killed_at < 30
    assert "pipeline.check_shard" in _log(second)
    assert f"transport:   {celery['broker_url'].split('://')[0]}://" in _log(second)  # the broker asked for
    for host in held_hosts:
        assert local_site.count("/held", host_index=host) == 2
        assert all(local_site.count(path, host_index=host) == 1 for path in answered)
    assert _statuses(folder) == expected_statuses
    assert _files(corpus) == expected_files
    rows = _link_rows(state_url)
    assert rows and all(failures <= 1 and len(recent) == 1 for failures, recent in rows.values()), rows


# ---- the broker goes away -----------------------------------------------------------------------------
def test_broker_killed_mid_run_exits_9_and_touches_no_file(
    local_site: LocalSite, broker: RedisServer, pg: PostgresServer, tmp_path: Path
) -> None:
    """The broker dies while a worker is checking (tasks still queued): exit 9 after the wait, one clear
    line, every article file byte-identical, no verdict recorded."""
    corpus = _world(local_site, tmp_path)
    before = _files(corpus)
    state_url = _new_database(pg)
    config = _config(tmp_path, corpus, broker.url, state_url)
    with workers(config, 1, tmp_path):
        run = _coordinator(config, tmp_path)
        _wait_for(lambda: local_site.count("/held") >= 1, "a held request", run)
        broker.kill()
        code, stderr = _finish(run)

    assert code == 9, stderr[-3000:]
    [line] = _error_lines(stderr)
    assert f"127.0.0.1:{broker.port}" in line or "worker" in line, line
    assert _files(corpus) == before
    assert _link_rows(state_url) == {}


# ---- the database goes away ---------------------------------------------------------------------------
def test_database_stopped_mid_run_exits_6_and_touches_no_file(
    local_site: LocalSite, broker: RedisServer, tmp_path: Path
) -> None:
    """PostgreSQL stops while the workers check: the coordinator retries, then exits 6 with one line naming
    the database; every article file is byte-identical."""
    corpus = _world(local_site, tmp_path)
    before = _files(corpus)
    with postgres_instance() as server:
        state_url = _new_database(server)
        config = _config(tmp_path, corpus, broker.url, state_url)
        with workers(config, 1, tmp_path):
            run = _coordinator(config, tmp_path)
            _wait_for(lambda: local_site.count("/held") >= 1, "a held request", run)
            server.stop()
            code, stderr = _finish(run)

    assert code == 6, stderr[-3000:]
    [line] = _error_lines(stderr)
    assert f"127.0.0.1:{server.port}" in line, line
    assert _files(corpus) == before


# ---- the outage guard on workers ----------------------------------------------------------------------
def test_network_failures_on_the_workers_never_turn_links_dead(
    broker: RedisServer, pg: PostgresServer, tmp_path: Path
) -> None:
    """Every host fails below HTTP on the workers (closed loopback ports, public hosts the test network
    refuses): the run is an outage, nothing is dead or flagged, no file changes, no verdict is recorded."""
    refused = [f"http://127.0.0.{60 + i}:{closed_port(f'127.0.0.{60 + i}')}/x" for i in range(3)]
    public = ["https://example.org/story", "https://news.example.com/a"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = "".join(f'  - webUrl: "{url}"\n' for url in [*refused, *public])
    (corpus / "a.md").write_text(f"---\ntitle: a\nrelated:\n{lines}---\n", encoding="utf-8")
    before = _files(corpus)
    state_url = _new_database(pg)
    config = _config(tmp_path, corpus, broker.url, state_url, health={"soft": {"runs": 1, "days": 0}})
    with workers(config, 2, tmp_path):
        code, stderr = _finish(_coordinator(config, tmp_path))

    assert code == 0, stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["outage"], report["run"]
    assert "dead" not in _statuses(tmp_path).values()
    assert _files(corpus) == before
    assert _link_rows(state_url) == {}
    assert "pipeline.check_shard" in _log(tmp_path)  # the workers checked
