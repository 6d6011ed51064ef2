"""A worker's task and its host leases and dispatch, on real parts: PostgreSQL, Redis, `pipeline worker`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from celeryworkers import NoProgress, celery_settings, worker_config, workers
from localsite import LocalSite
from redisserver import redis_server

from pipeline.config import Settings
from pipeline.distributed.coordinator import check_remote
from pipeline.distributed.leases import Leases
from pipeline.distributed.sharding import shard_host
from pipeline.errors import Interrupted
from pipeline.extract.pages import PageReader


def _settings(tmp_path: Path, broker: str, database: str, **celery: object) -> Settings:
    celery = {"wait_timeout": 20, "visibility_timeout": 30, **celery}
    return celery_settings(tmp_path, broker, database, **celery)


def _slow_host(site: LocalSite, count: int, delay: float) -> list[str]:
    paths = [f"/slow/{n}" for n in range(count)]
    for path in paths:
        site.route(path, status=200, delay=delay)
    return [site.url(path) for path in paths]


def _started_between(site: LocalSite, start: float, end: float) -> int:
    return sum(start <= hit.started <= end for hit in list(site.hits))


def test_a_task_that_loses_a_host_lease_stops_and_goes_back_to_the_queue(
    database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """Another token takes the lease mid-check: the task stops requesting that host within a third of the
    TTL, goes back to the queue, and a copy finishes the shard once the lease is free again."""
    urls = _slow_host(local_site, 40, 0.3)
    lease = f"pipeline:lease:{shard_host(urls[0])}"
    folder = tmp_path / "workers"
    folder.mkdir()
    with redis_server() as server, PageReader(set(), set(), NoProgress()) as digest:
        settings = _settings(tmp_path, server.url, database, lease_ttl=3.0)
        with workers(worker_config(folder, server.url, database, lease_ttl=3.0), 1, folder):
            result: list[object] = []
            run = threading.Thread(
                target=lambda: result.append(check_remote(urls, settings, digest, fetch_body={}))
            )
            run.start()
            deadline = time.monotonic() + 60
            while len(local_site.hits) < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            thief = redis.Redis.from_url(server.url)
            thief.set(lease, "another-task", px=60_000)  # as if the lease expired and another task took it
            stolen = time.monotonic()
            time.sleep(5.0)
            during = _started_between(local_site, stolen + 1.0 + 0.5, time.monotonic())
            thief.delete(lease)
            thief.close()
            run.join(timeout=90)
            logs = (folder / "worker0.log").read_text(errors="replace")

    assert during == 0  # nothing sent beside the new holder once the renewal saw it (ttl/3 = 1 s)
    assert "a host lease was lost; stopped, the task goes back" in logs
    assert result and len(result[0]) == len(urls)  # type: ignore[arg-type]
    assert {hit.path for hit in local_site.hits} == {f"/slow/{n}" for n in range(40)}


def test_a_lease_redis_that_is_away_puts_the_task_back_instead_of_failing_the_run(
    database: str, local_site: LocalSite, tmp_path: Path
) -> None:
    """The leases' Redis (celery.lease_url) is down when a worker takes the task: the task goes back to the
    queue, and once that Redis is back the run completes (no shard error, no exit 9)."""
    urls = _slow_host(local_site, 6, 0.0)
    folder = tmp_path / "workers"
    folder.mkdir()
    digest = PageReader(set(), set(), NoProgress())
    with redis_server() as broker, redis_server() as leases, digest:
        settings = _settings(tmp_path, broker.url, database, lease_url=leases.url)
        config = worker_config(folder, broker.url, database, lease_url=leases.url)
        with workers(config, 1, folder):
            leases.stop()
            result: list[object] = []
            errors: list[BaseException] = []

            def coordinate() -> None:
                try:
                    result.append(check_remote(urls, settings, digest, fetch_body={}))
                except BaseException as exc:
                    errors.append(exc)

            run = threading.Thread(target=coordinate)
            run.start()
            deadline = time.monotonic() + 30
            log = folder / "worker0.log"
            while "the lease Redis failed" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline and run.is_alive(), errors
                time.sleep(0.1)
            leases.start()
            run.join(timeout=90)

    assert errors == []
    assert result and len(result[0]) == len(urls)  # type: ignore[arg-type]


def test_stopping_the_run_stops_the_workers(database: str, local_site: LocalSite, tmp_path: Path) -> None:
    """The coordinator stopped mid-check closes its dispatch: the worker sees it at its next flush and
    stops requesting within seconds instead of finishing the shard."""
    urls = _slow_host(local_site, 60, 0.3)
    folder = tmp_path / "workers"
    folder.mkdir()
    stop = threading.Event()
    with redis_server() as server, PageReader(set(), set(), NoProgress()) as digest:
        settings = _settings(tmp_path, server.url, database)
        with workers(worker_config(folder, server.url, database), 1, folder):
            raised: list[BaseException] = []

            def coordinate() -> None:
                try:
                    check_remote(urls, settings, digest, fetch_body={}, stop=stop)
                except BaseException as exc:
                    raised.append(exc)

            run = threading.Thread(target=coordinate)
            run.start()
            deadline = time.monotonic() + 60
            while len(local_site.hits) < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            run.join(timeout=30)
            stopped = time.monotonic()
            time.sleep(6.0)
            logs = (folder / "worker0.log").read_text(errors="replace")

    assert len(raised) == 1 and isinstance(raised[0], Interrupted)
    assert _started_between(local_site, stopped + 3.0, time.monotonic()) == 0
    assert len(local_site.hits) < len(urls)  # the shard was not finished for nobody
    assert "the run is over (its dispatch is closed); stopped" in logs


@contextmanager
def _slow_link(port: int, delay: float) -> Iterator[str]:
    """A TCP proxy to 127.0.0.1:``port`` that holds every chunk ``delay`` seconds each way (a Redis one
    network away); yields its redis:// URL."""
    ready: list[tuple[int, asyncio.Event]] = []
    loop = asyncio.new_event_loop()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(forward(reader, upstream_writer), forward(upstream_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0)
        stop = asyncio.Event()
        ready.append((server.sockets[0].getsockname()[1], stop))
        await stop.wait()
        server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    while not ready:
        time.sleep(0.01)
    proxy_port, stop = ready[0]
    try:
        yield f"redis://127.0.0.1:{proxy_port}/0"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=5)
        loop.close()


def test_many_host_leases_are_taken_and_renewed_in_one_round_trip_each() -> None:
    """A shard of 300 hosts over a link of 20 ms each way: taking, renewing and releasing its leases each
    cost one round trip, not one per host (300 x 40 ms = 12 s, four TTLs: the first leases would expire
    before the last were taken, and every renewal would find some gone)."""
    hosts = [f"host{n}.example" for n in range(300)]
    with redis_server() as server, _slow_link(server.port, 0.02) as url:
        started = time.monotonic()
        with Leases(url, ttl_s=3.0) as leases:
            assert leases.hold(hosts, give_up=lambda: False) == "held"
            taken_in = time.monotonic() - started
            time.sleep(3.5)  # past the TTL: only renewals keep the leases
            direct = redis.Redis.from_url(server.url)
            alive = sum(bool(direct.exists(f"pipeline:lease:{host}")) for host in hosts)
            lost = leases.lost.is_set()
        left = sum(bool(direct.exists(f"pipeline:lease:{host}")) for host in hosts)
        direct.close()

    assert taken_in < 1.0
    assert alive == len(hosts) and not lost
    assert left == 0  # released on exit
