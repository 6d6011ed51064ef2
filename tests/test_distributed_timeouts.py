"""The coordinator against a broker that goes silent, a connection leak, and masked URLs."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest
from celeryworkers import NoProgress, celery_settings, worker_config, workers
from localsite import LocalSite
from redisserver import redis_server

from pipeline.configfile import parse_settings
from pipeline.distributed.coordinator import check_remote
from pipeline.distributed.observed import Shared
from pipeline.errors import EngineUnavailable
from pipeline.extract.pages import PageReader
from pipeline.health.postgres import redacted


def test_a_broker_gone_silent_ends_the_coordinator_with_exit_9(
    database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """Redis stops answering (SIGSTOP: its sockets stay open, nothing replies) mid-run: the coordinator
    ends with EngineUnavailable within a bounded time instead of waiting on a reply for ever."""
    paths = [f"/slow/{n}" for n in range(40)]
    for path in paths:
        local_site.route(path, status=200, delay=0.3)
    urls = [local_site.url(path) for path in paths]
    folder = tmp_path / "workers"
    folder.mkdir()
    celery = {"wait_timeout": 4.0, "visibility_timeout": 2.0, "lease_ttl": 3.0}
    with redis_server() as server, PageReader(set(), set(), NoProgress()) as digest:
        settings = celery_settings(tmp_path, server.url, database, **celery)
        with workers(worker_config(folder, server.url, database, **celery), 1, folder):
            raised: list[BaseException] = []

            def coordinate() -> None:
                try:
                    check_remote(urls, settings, digest, fetch_body={})
                except BaseException as exc:
                    raised.append(exc)

            run = threading.Thread(target=coordinate, daemon=True)
            run.start()
            deadline = time.monotonic() + 60
            while len(local_site.hits) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                run.join(timeout=60)
                ended = not run.is_alive()
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            run.join(timeout=60)

    assert ended, "the coordinator still waits on a silent broker"
    assert len(raised) == 1 and isinstance(raised[0], EngineUnavailable), raised


def test_shared_tables_that_cannot_be_created_leak_no_connection(database: str) -> None:
    """The dispatch tables' DDL failing (a read-only database) closes the connection it opened."""
    name = database.rsplit("/", 1)[1]
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    for _ in range(3):
        with pytest.raises(psycopg.Error):
            Shared(database, 5)
    # A closed connection's server process leaves pg_stat_activity a moment after the client has gone (it
    # notices the closed socket, then exits): wait for that; a leaked connection stays for good.
    others = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(database, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while (row := admin.execute(others).fetchone()) != (0,) and time.monotonic() < deadline:
            time.sleep(0.05)

    assert row == (0,)


def test_messages_mask_passwords_in_the_query_and_survive_a_bad_port() -> None:
    """redacted() masks a ?password= parameter as well as the netloc's, and a port that is not a number
    does not turn the message into a ValueError."""
    assert redacted("postgresql://h/db?user=u&password=pw&sslmode=require") == (
        "postgresql://h/db?user=u&password=***&sslmode=require"
    )
    assert redacted("postgresql://u:pw@db.example:5432/x") == "postgresql://u:***@db.example:5432/x"
    assert redacted("postgresql://u:pw@db.example:bad/x") == "postgresql://u:***@db.example:bad/x"
    assert redacted("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted("postgresql://db.example/x") == "postgresql://db.example/x"


def test_a_broker_on_a_unix_socket_keeps_its_leases_there() -> None:
    """celery.broker_url redis+socket:///path is accepted, and the leases use the same socket (unix://)."""
    celery = parse_settings({"celery": {"broker_url": "redis+socket:///run/redis.sock"}}).celery

    assert celery.leases == "unix:///run/redis.sock"
    assert parse_settings({"celery": {"broker_url": "redis://h:1/0"}}).celery.leases == "redis://h:1/0"
