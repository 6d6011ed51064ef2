"""The coordinator's side of ``executor: celery``: send one task per shard (``sharding``), show progress
while workers record, and read their observations back as they arrive (decoded while the workers check).

Reads: ``celery.*``, ``state.url``, and the ``http.*`` and ``retry.*`` the tasks carry (so coordinator
and workers always check alike). Returns what ``check.check_links_sync`` returns, ``dict[url,
Observation]``, and fills the same ``PageReader`` results and per-host figures, so the rest of the run is the
local run's code.

Faults: the broker is tried with backoff for ``celery.wait_timeout`` seconds, then ``EngineUnavailable``
(exit 9) names it; so is "no worker answered". The database likewise, then ``PathUnusable`` (exit 6). A
stall (nothing recorded) is waited out for ``visibility_timeout`` + ``wait_timeout`` seconds, the time a
task of a killed worker takes to come back; while workers still answer, it is waited out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery

from pipeline.config import Settings
from pipeline.distributed import codec, observed
from pipeline.distributed.app import SETUP, TASK, build_app
from pipeline.distributed.sharding import shard_host, shards
from pipeline.errors import EngineUnavailable, Interrupted, PathUnusable
from pipeline.extract.pages import Advances, PageReader
from pipeline.health.postgres import redacted
from pipeline.models import Observation, Validators
from pipeline.runreport import HostStats

if TYPE_CHECKING:
    from pipeline.distributed.prepared import Prepared

log = logging.getLogger("pipeline")
T = TypeVar("T")
_COUNT_S = 0.5  # how long the coordinator collects the workers' answers to count their pool processes
_POLL_S = 0.1  # the last shard's end is seen within this: a quarter second was 1 % of a run on 4 workers
_BROKER_CHECK_S = 5.0  # how often the coordinator makes sure the broker is still there
_RESENDS = 3  # times the unfinished shards are sent again after a stall, before giving up
_READ_ROWS = 5000  # observations read back per statement


class _Deadline:
    """Retries with backoff (0.2 s doubling to 2 s) until ``seconds`` have passed without success."""

    def __init__(self, seconds: float, stop: threading.Event | None) -> None:
        self.seconds, self.stop = seconds, stop

    def retry(
        self,
        step: Callable[[], T],
        errors: tuple[type[BaseException], ...],
        fail: Callable[[BaseException], Exception],
    ) -> T:
        start, pause = time.monotonic(), 0.2
        while True:
            try:
                return step()
            except errors as exc:
                if time.monotonic() - start + pause > self.seconds:
                    raise fail(exc) from exc
                log.debug("retrying after %s", exc)
            if self.stop is not None and self.stop.wait(pause):
                raise Interrupted
            pause = min(pause * 2, 2.0)


class _Dispatch:
    """One call of the check: a job id, its shards, and the connections to the broker and database."""

    def __init__(self, settings: Settings, stop: threading.Event | None) -> None:
        assert settings.state.url is not None  # Settings refuses executor: celery without it
        self.settings, self.url, self.stop = settings, settings.state.url, stop
        self.celery = settings.celery
        self.deadline = _Deadline(self.celery.wait_timeout, stop)
        self.job = uuid.uuid4().hex
        self.app: Celery = build_app(self.celery, None)
        self.shared = self.database(lambda: observed.Shared(self.url, self.celery.wait_timeout))
        self.found: dict[str, codec.Observed] = {}  # the observations read back so far, by URL
        self._read_up_to = 0  # the arrival number of the last row read

    def watch(self, stop: threading.Event | None) -> None:
        """Honour this stop request from now on (a dispatch made ready on another thread)."""
        self.stop = self.deadline.stop = stop

    def database(self, step: Callable[[], T]) -> T:
        """``step`` on the history database, retried; gone for ``wait_timeout``: ``PathUnusable``."""
        where = Path(redacted(self.url))

        def step_or_reconnect() -> T:
            try:
                return step()
            except observed.DatabaseError:
                self._reconnect()  # the next try runs on a new connection
                raise

        return self.deadline.retry(
            step_or_reconnect,
            (observed.DatabaseError,),
            lambda exc: PathUnusable(
                where,
                f"cannot reach the history database for {self.celery.wait_timeout:g} s: {str(exc).strip()}",
                "start PostgreSQL or correct state.url; no article was written",
            ),
        )

    def _broker(self, step: Callable[[], T]) -> T:
        from kombu.exceptions import OperationalError

        with self.app.connection_for_write() as conn:  # the transport's own errors (redis', amqp's)
            transport_errors = tuple(conn.connection_errors) + tuple(conn.channel_errors)
        return self.deadline.retry(
            step,
            (OperationalError, OSError, *transport_errors),
            lambda exc: EngineUnavailable(
                f"the broker {redacted(self.celery.broker_url)} cannot be reached for"
                f" {self.celery.wait_timeout:g} s (celery.broker_url): {exc}; no article was written"
            ),
        )

    def _connected(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=max(1.0, self.celery.wait_timeout / 10))

    def _workers(self) -> int:
        with self.app.connection_for_write() as conn:  # a new connection: a pooled one may be stale
            conn.ensure_connection(max_retries=1, timeout=max(1.0, self.celery.wait_timeout / 10))
            # One answer is enough: stop waiting at the first.
            return len(self.app.control.ping(timeout=1.0, limit=1, connection=conn))

    def _processes(self) -> int:
        conn = self.app.connection_for_write()
        try:
            conn.ensure_connection(max_retries=1, timeout=max(1.0, self.celery.wait_timeout / 10))
            # Every worker's answer within the window, not the first only: each says its pool's size, and
            # whether it sees this dispatch and which leases' Redis it uses (``SETUP``).
            replies = self.app.control.broadcast(
                SETUP, arguments={"job": self.job}, reply=True, timeout=_COUNT_S, connection=conn
            )
            answers = {node: answer for reply in replies or [] for node, answer in reply.items()}
            if not answers:  # none yet, or workers of an earlier release, which know only Celery's stats
                stats = self.app.control.inspect(timeout=_COUNT_S, connection=conn).stats() or {}
                answers = {
                    node: {"pool": stat.get("pool", {}).get("max-concurrency")}
                    for node, stat in stats.items()
                }
        finally:
            # Closed on a thread of its own: closing the channel that collected the answers first reads the
            # answer of its last poll of the reply queue (kombu's BRPOP, up to 1 s): 0.5 s of the dispatch's
            # set-up in a profile, before the first shard could leave.
            threading.Thread(target=conn.release, name="broker-close", daemon=True).start()
        self._agreed(answers)
        return sum(max(1, int(answer.get("pool") or 1)) for answer in answers.values())

    def _agreed(self, answers: dict[str, dict[str, Any]]) -> None:
        """Refuse workers that could not take part: one whose history database lacks this dispatch (its
        ``state.url`` names another database: it would drop every task as if the run were over), or
        workers keeping their host leases in different Redis servers (each would keep a host's cap alone)."""
        elsewhere = sorted(node for node, answer in answers.items() if answer.get("sees_job") is False)
        if elsewhere:
            raise EngineUnavailable(
                f"the history database of worker {', '.join(elsewhere)} does not hold this run's dispatch:"
                f" state.url must name this run's ({redacted(self.url)}) on every worker; no article was"
                " written"
            )
        servers: dict[str, list[str]] = {}
        for node, answer in sorted(answers.items()):
            if answer.get("leases"):
                servers.setdefault(str(answer["leases"]), []).append(node)
        if len(servers) > 1:
            groups = "; ".join(", ".join(nodes) for nodes in servers.values())
            raise EngineUnavailable(
                f"the workers keep their host leases in {len(servers)} different Redis servers ({groups}):"
                " per-host politeness cannot hold across them; give them one celery.lease_url (or one"
                " Redis broker_url); no article was written"
            )

    def await_workers(self) -> int:
        """Wait for the broker and for at least one worker to answer; the pool processes of the workers
        that answered (a worker answering late is not counted: it still takes shards, the run is only cut
        into fewer)."""
        self._broker(self._connected)
        start = time.monotonic()
        while not (processes := self._broker(self._processes)):
            if time.monotonic() - start > self.celery.wait_timeout:
                raise EngineUnavailable(
                    f"no worker answered on {redacted(self.celery.broker_url)} within"
                    f" {self.celery.wait_timeout:g} s (start `pipeline worker`); no article was written"
                )
            if self.stop is not None and self.stop.wait(0.5):
                raise Interrupted
        return processes

    def send(self, payloads: list[dict[str, Any]]) -> None:
        """Send every shard's task; after a broker failure the rest go on a new connection."""
        pending = list(payloads)

        def send_pending() -> None:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                while pending:
                    self.app.send_task(TASK, kwargs={"payload": pending[0]}, connection=conn, retry=False)
                    pending.pop(0)  # a task sent twice (the answer lost) is harmless: shards are idempotent

        self._broker(send_pending)

    def wait(self, payloads: list[dict[str, Any]], progress: Advances | None) -> None:
        """Until every shard is recorded, advancing ``progress`` as rows arrive.

        The broker is asked every few seconds (gone for ``wait_timeout``: exit 9). When nothing has been
        recorded for ``visibility_timeout`` + ``wait_timeout`` (the time a lost task takes to come back)
        while workers still answer, the unfinished shards are sent again (a broker restarted without its
        queue lost them; shards are idempotent), up to ``_RESENDS`` times in a row.
        """
        counted, finished, resends = 0, 0, 0
        stall_limit = self.celery.visibility_timeout + self.celery.wait_timeout
        last_change = last_broker = time.monotonic()
        while finished < len(payloads):
            if self.stop is not None and self.stop.is_set():
                raise Interrupted
            time.sleep(_POLL_S)
            count, finished = self.database(lambda: self.shared.progress(self.job))
            self.gather()
            if count != counted:
                if progress is not None:
                    progress.advance(count - counted)
                counted, last_change, resends = count, time.monotonic(), 0
            errors = self.database(lambda: self.shared.shard_errors(self.job))
            if errors:
                shard, error = errors[0]
                raise EngineUnavailable(f"a worker could not check shard {shard}: {error}")
            if time.monotonic() - last_broker > _BROKER_CHECK_S:
                self._broker(self._connected)
                last_broker = time.monotonic()
            if time.monotonic() - last_change > stall_limit:
                left = len(payloads) - finished
                if not self._broker(self._workers):
                    raise EngineUnavailable(
                        f"no worker answered on {redacted(self.celery.broker_url)} after {stall_limit:g} s"
                        f" without progress ({left} shards left); no article was written"
                    )
                if resends == _RESENDS:
                    raise EngineUnavailable(
                        f"nothing was recorded for {stall_limit:g} s although workers answer on"
                        f" {redacted(self.celery.broker_url)} ({left} shards left, sent {resends + 1} times);"
                        " no article was written"
                    )
                done = self.database(lambda: self.shared.done_shards(self.job))
                log.warning(
                    "nothing recorded for %g s: sending the %d unfinished shards again", stall_limit, left
                )
                self.send([payload for payload in payloads if payload["shard"] not in done])
                resends, last_change = resends + 1, time.monotonic()

    def gather(self) -> None:
        """Read back and decode the rows that arrived since the last call: done while the workers still
        check, so that little is left for after the last shard."""
        while True:
            rows = self.database(lambda: self.shared.observations(self.job, self._read_up_to, _READ_ROWS))
            for seq, text in rows:
                record = codec.decode(text)
                self.found.setdefault(record.observation.url, record)
                self._read_up_to = max(self._read_up_to, seq)
            if len(rows) < _READ_ROWS:
                return

    def collect(self, wanted: list[str]) -> dict[str, codec.Observed]:
        """Every observation of ``wanted`` that was recorded: the rest of the rows by arrival, then by URL any
        whose transaction committed after a later row had been read."""
        self.gather()
        missing = [url for url in wanted if url not in self.found]
        for start in range(0, len(missing), _READ_ROWS):
            chunk = missing[start : start + _READ_ROWS]
            for text in self.database(lambda: self.shared.observations_of(self.job, chunk)):  # noqa: B023
                record = codec.decode(text)
                self.found.setdefault(record.observation.url, record)
        return self.found

    def _reconnect(self) -> None:
        old = getattr(self, "shared", None)
        if old is None:  # the first connection is being made
            return
        old.close()
        with contextlib.suppress(observed.DatabaseError):  # still away: the next try connects again
            self.shared = observed.Shared(self.url, self.celery.wait_timeout)

    def close(self) -> None:
        try:
            self.shared.close_job(self.job)
        except observed.DatabaseError as exc:  # the database is away: the next dispatch removes the rows
            log.warning("could not remove dispatch %s from the history database: %s", self.job, exc)
        self.shared.close()
        self.app.close()  # its broker connection pool: a daemon makes a dispatch every night


def _ready(settings: Settings, stop: threading.Event | None) -> tuple[_Dispatch, int]:
    """A dispatch opened in the database, once the broker and a worker answer; the workers' processes."""
    dispatch = _Dispatch(settings, stop)
    try:
        dispatch.database(lambda: dispatch.shared.open_job(dispatch.job))
        return dispatch, dispatch.await_workers()
    except BaseException:
        dispatch.close()
        raise


def check_remote(
    urls: list[str],
    settings: Settings,
    digest: PageReader,
    *,
    fetch_body: Mapping[str, int],
    validators: Mapping[str, Validators] | None = None,
    host_stats: dict[str, HostStats] | None = None,
    stop: threading.Event | None = None,
    progress: Advances | None = None,
    origin: dict[str, str] | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Observation]:
    """``check.check_links_sync`` on the workers: the observations, and ``digest`` and ``host_stats`` filled
    as a local check fills them; ``origin`` gets the worker that requested each URL. ``prepared``: a
    dispatch made ready meanwhile (else one is made now)."""
    wanted = list(dict.fromkeys([*urls, *fetch_body]))
    dispatch, processes = prepared.take() if prepared is not None else _ready(settings, stop)
    try:
        http = settings.http
        groups = shards(wanted, http.per_host_concurrency, http.max_concurrency, processes)
        check_settings = settings.model_dump(mode="json", include={"http", "retry"})
        known = validators or {}
        payloads = [
            {
                "job": dispatch.job,
                "shard": index,
                "urls": group,
                "hosts": sorted({host for host in map(shard_host, group) if host}),
                "fetch_body": {url: fetch_body[url] for url in group if url in fetch_body},
                "validators": {url: list(known[url]) for url in group if url in known},
                "pages": [url for url in group if url in digest.page_urls],
                "images": [url for url in group if url in digest.image_urls],
                "settings": check_settings,
            }
            for index, group in enumerate(groups)
        ]
        log.info(
            "sending %d URLs to the workers in %d shards for %d worker processes (dispatch %s)",
            len(wanted),
            len(groups),
            processes,
            dispatch.job,
        )
        dispatch.send(payloads)
        if prepared is not None:
            prepared.sent()  # the run's own work while the workers check
        dispatch.wait(payloads, progress)
        found = dispatch.collect(wanted)
        stats = dispatch.database(lambda: dispatch.shared.host_stats(dispatch.job))
    finally:
        dispatch.close()
    observations: dict[str, Observation] = {}
    missing = [url for url in wanted if url not in found]
    if missing:  # a worker's bug: the run must not judge a URL nobody checked
        raise EngineUnavailable(
            f"the workers recorded no observation of {len(missing)} URLs ({missing[0]} …)"
        )
    for url in wanted:
        record = found[url]
        observations[url] = record.observation
        if origin is not None:
            origin[url] = record.worker
        digest.add(
            url, page=record.page, validators=record.validators, probe=record.probe, refused=record.refused
        )
    if host_stats is not None:
        for text in stats:
            host_stats.update(codec.decode_stats(text))
    return observations
