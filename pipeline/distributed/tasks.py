"""The worker's task: check one shard (a group of whole hosts) and record what it observed.

Reads: the task's payload (the shard's URLs, which are pages and images, the bodies and validators wanted,
and the coordinator's ``http.*`` and ``retry.*``), ``state.url`` and ``celery.*`` of the worker. Writes: one
row per URL to the shared history (``observed``) as it is digested, in batches from a thread of its own,
then the shard's row. Never touches an article file and never keeps a page body.

A delivery of a task whose dispatch is over, or whose shard another copy finished, does nothing; a copy
redelivered after its first delivery died skips the URLs that one recorded. The shard's host leases are
held for the whole check, so two copies never check the same host at once: a task that loses one (its
renewal finds another holder, or Redis cannot be reached) stops checking and goes back to the queue. A
database or lease-Redis failure also puts the task back (``Reject(requeue=True)``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import psycopg
import redis
from celery.exceptions import Reject

from pipeline import check
from pipeline.config import Settings
from pipeline.distributed import codec, observed
from pipeline.distributed.leases import Leases
from pipeline.engineconfig import CelerySettings
from pipeline.errors import Interrupted
from pipeline.extract.pages import PageReader
from pipeline.health.postgres import redacted
from pipeline.models import Observation
from pipeline.runreport import HostStats

log = logging.getLogger("pipeline")
_BATCH, _BATCH_S = 500, 0.5  # observations written together: this many, or all gathered in this time
_PENDING = 20_000  # rows waiting for the writer before the checker waits for it


class _Silent:
    def advance(self, n: int = 1) -> None:
        """A worker shows no progress bar; the coordinator counts the recorded rows."""


class _Recorder:
    """Each observation's row, with its page metadata or probe, written in batches on a thread of its own.

    Why a thread: a batch's round trip to the database on the page parser's thread stalled the parser, and
    through its bounded queue the event loop, at every write. Observations with nothing to digest (no body,
    not an image) are recorded straight from the event loop (:meth:`direct`), the others by the parser once
    digested (``__call__``). The writer sends what has gathered every ``_BATCH_S`` seconds, or at once past
    ``_BATCH`` rows; each write also asks whether the dispatch is still open (a closed one stops the
    check). A database error stops the check too, and :meth:`finish` raises it (the task goes back).
    """

    def __init__(
        self, shared: observed.Shared, job: str, shard: int, worker: str, stop: threading.Event
    ) -> None:
        self._shared, self._job, self._shard, self._worker, self._stop = shared, job, shard, worker, stop
        self.closed = False  # the coordinator closed the dispatch (the run stopped or failed)
        self.reader: PageReader | None = None  # the reader whose results go with each observation
        self._rows: list[tuple[str, str]] = []
        self._refused_seen = 0
        self._ready = threading.Condition()
        self._finishing = False
        self._error: Exception | None = None
        self._writer = threading.Thread(target=self._write_loop, name="recorder", daemon=True)
        self._writer.start()

    def direct(self, obs: Observation) -> None:
        """The checker's callback: an observation with nothing to digest is recorded as it is, any other
        goes to the page reader first."""
        reader = self.reader
        assert reader is not None
        if not reader.needs_digest(obs):
            self._add(codec.Observed(obs, worker=self._worker))  # its body, if any, is never encoded
        else:
            reader(obs)

    def __call__(self, obs: Observation) -> None:
        reader = self.reader
        assert reader is not None
        refused = [reason for url, reason in reader.refused[self._refused_seen :] if url == obs.url]
        self._refused_seen = len(reader.refused)
        self._add(
            codec.Observed(
                replace(obs, page=None),
                page=reader.pages.get(obs.url),
                validators=reader.validators.get(obs.url),
                probe=reader.probes.get(obs.url),
                refused=refused[-1] if refused else None,
                worker=self._worker,
            )
        )

    def _add(self, record: codec.Observed) -> None:
        row = (record.observation.url, codec.encode(record))
        with self._ready:
            # Rows are small, but a database slower than the checks must not fill the memory.
            self._ready.wait_for(
                lambda: len(self._rows) < _PENDING or self._error is not None or not self._writer.is_alive()
            )
            self._rows.append(row)
            if len(self._rows) >= _BATCH:
                self._ready.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._finishing or len(self._rows) >= _BATCH, timeout=_BATCH_S)
                rows, self._rows, last = self._rows, [], self._finishing
                self._ready.notify_all()
            if not self.closed:
                try:
                    if not self._shared.record(self._job, rows, self._shard):
                        self.closed = True  # nobody waits: stop the check
                        self._stop.set()
                # Any error, not only a lost connection (a value the database refuses, a closed handle):
                # a writer that died quietly would lose its batch and leave the check waiting on it.
                except Exception as exc:
                    with self._ready:
                        self._error = exc
                        self._ready.notify_all()
                    self._stop.set()
                    return
            if last:
                return

    def finish(self) -> None:
        """Write the rows still gathered and stop the writer; an error on the way is raised (a database that
        went away puts the task back; any other fails the shard clearly)."""
        with self._ready:
            self._finishing = True
            self._ready.notify_all()
        self._writer.join()
        if self._error is not None:
            raise self._error


def describe(job: str, state_url: str, celery: CelerySettings) -> dict[str, Any]:
    """What this worker tells a coordinator before its dispatch: ``sees_job``, whether its history database
    holds the dispatch ``job`` (None: that database cannot be reached now, and its tasks will wait for it),
    and ``leases``, the run id of its leases' Redis (None: unreachable), which must be every worker's.

    Why: a worker whose ``state.url`` names another database drops every task it takes, as if the run were
    over, and workers on different lease servers would each keep a host's cap alone; both looked like a run
    that stalls, and ended after minutes of resends with no word of the cause."""
    patience = min(5.0, celery.wait_timeout)
    try:
        sees: bool | None = observed.holds_job(state_url, job, patience)
    except psycopg.Error as exc:
        log.warning("cannot reach the history database to answer the coordinator: %s", exc)
        sees = None
    try:
        client = redis.Redis.from_url(celery.leases, socket_timeout=patience, socket_connect_timeout=patience)
        try:
            leases: str | None = str(client.info("server")["run_id"])
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning("cannot reach the leases' Redis to answer the coordinator: %s", exc)
        leases = None
    return {"sees_job": sees, "leases": leases}


def check_shard(payload: dict[str, Any], state_url: str, celery: CelerySettings, worker: str = "") -> None:
    """Check the payload's shard and record it; a database that cannot be reached puts the task back.

    ``worker``: this worker's node name, recorded with each observation (its network is judged apart)."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    job, shard = str(payload["job"]), int(payload["shard"])
    try:
        shared = observed.Shared(state_url, celery.wait_timeout)
    except observed.DatabaseError as exc:
        log.warning(
            "shard %d of %s: cannot reach the history database (%s); the task goes back", shard, job, exc
        )
        time.sleep(1.0)
        raise Reject(str(exc), requeue=True) from exc
    try:
        try:
            if not shared.job_open(job):
                # The workers that answered before the dispatch had their database checked (pipeline_setup);
                # one started later on another database than the coordinator's lands here: say so.
                log.warning(
                    "shard %d of %s: no such dispatch in this worker's history database (%s): the run is"
                    " over, or this worker's state.url is not the coordinator's; dropped",
                    shard,
                    job,
                    redacted(state_url),
                )
                return
            if shared.shard_done(job, shard):
                log.info("shard %d of %s: already done by another copy", shard, job)
                return
            _check(shared, payload, job, shard, celery, worker)
        except observed.DatabaseError as exc:
            log.warning(
                "shard %d of %s: the history database went away (%s); the task goes back", shard, job, exc
            )
            raise Reject(str(exc), requeue=True) from exc
        except redis.RedisError as exc:  # the leases' Redis: a blip must not fail the run
            log.warning("shard %d of %s: the lease Redis failed (%s); the task goes back", shard, job, exc)
            time.sleep(1.0)
            raise Reject(str(exc), requeue=True) from exc
        except Reject:
            raise
        except Exception as exc:  # a bug must fail the run clearly, not leave the coordinator waiting
            log.exception("shard %d of %s failed", shard, job)
            shared.finish_shard(job, shard, "[]", f"{type(exc).__name__}: {exc}")
    finally:
        shared.close()


def _check(
    shared: observed.Shared,
    payload: dict[str, Any],
    job: str,
    shard: int,
    celery: CelerySettings,
    worker: str,
) -> None:
    started = time.monotonic()
    settings = Settings.model_validate(payload["settings"])
    urls: list[str] = payload["urls"]
    hosts: list[str] = payload["hosts"]
    stop = threading.Event()
    with Leases(celery.leases, celery.lease_ttl, lost=stop) as leases:
        held = leases.hold(hosts, give_up=lambda: shared.shard_done(job, shard) or not shared.job_open(job))
        if held == "done":
            log.info("shard %d of %s: finished by another copy while this one waited", shard, job)
            return
        if held == "busy":  # a live copy checks it: back to the queue, in case that copy dies after all
            log.info("shard %d of %s: another copy is checking it; back to the queue", shard, job)
            raise Reject("another copy holds the shard's host leases", requeue=True)
        seen = shared.observed(job, urls)
        todo = [url for url in urls if url not in seen]
        fetch_body = {url: int(n) for url, n in payload["fetch_body"].items() if url not in seen}
        validators = {url: (v[0], v[1]) for url, v in payload["validators"].items() if url not in seen}
        recorder = _Recorder(shared, job, shard, worker, stop)
        stats: dict[str, HostStats] = {}
        checking = time.monotonic()
        try:
            with PageReader(set(payload["pages"]), set(payload["images"]), _Silent(), recorder) as reader:
                recorder.reader = reader
                try:
                    check.check_links_sync(
                        todo,
                        settings,
                        fetch_body=fetch_body,
                        on_result=recorder.direct,
                        keep_pages=False,
                        validators=validators,
                        host_stats=stats,
                        stop=stop,  # a lease lost or the run over: stop within a fifth of a second
                    )
                except Interrupted:
                    pass
                else:
                    reader.drain()
            checked = time.monotonic()
        finally:
            recorder.finish()
        if recorder.closed:
            log.info("shard %d of %s: the run is over (its dispatch is closed); stopped", shard, job)
            return
        if stop.is_set():  # a lease lost, maybe while the last pages were digested: not finished here
            log.warning("shard %d of %s: a host lease was lost; stopped, the task goes back", shard, job)
            raise Reject("a host lease was lost", requeue=True)
        shared.finish_shard(job, shard, codec.encode_stats(stats))
        log.info(
            "shard %d of %s: %d URLs checked (%d recorded earlier) in %.2f s: %.2f s to start,"
            " %.2f s checking, %.2f s recording the last rows",
            shard, job, len(todo), len(seen), time.monotonic() - started, checking - started,
            checked - checking, time.monotonic() - checked,
        )  # fmt: skip
