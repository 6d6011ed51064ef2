"""Per-host leases in Redis: while a task checks a host, no other task (on any worker) checks it.

Reads: ``celery.leases`` (the Redis URL) and ``celery.lease_ttl``. Returns: :class:`Leases`, which holds a
set of host keys for one task. A lease is ``SET pipeline:lease:<host> <token> NX PX <ttl>``; a heartbeat
thread renews every lease held each third of the TTL, and release deletes a key only while it still holds
this task's token (compare-and-delete in one Lua script), so a lease that expired and was taken by another
task is never deleted by the first. A worker that dies stops renewing: its leases expire after the TTL.
A renewal that finds another token, or cannot reach Redis, sets :attr:`Leases.lost`: the task must stop
checking (within a third of the TTL) rather than check beside a new holder. Errors of ``hold`` are
``redis.RedisError`` (the task goes back to the queue); release never raises (an unreleased lease expires).

Why leases and not one consumer per host: a task redelivered while its first copy still runs (the Redis
transport redelivers after ``visibility_timeout``) would otherwise check the same hosts twice at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Literal

import redis
from redis.client import Pipeline

log = logging.getLogger("pipeline")

_PREFIX = "pipeline:lease:"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end"
    " return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RETRY_S = 0.25  # between attempts to take leases another task holds
Held = Literal["held", "done", "busy"]


class Leases:
    """The leases one task holds (a context manager: released on exit, whatever happened)."""

    def __init__(self, url: str, ttl_s: float, lost: threading.Event | None = None) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=max(1.0, ttl_s / 3))
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._token = secrets.token_hex(16)
        self._held: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.lost = lost or threading.Event()  # a lease may have gone to another task: stop checking
        self._beat = threading.Thread(target=self._renew_loop, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Leases:
        self._beat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._beat.join()
        self.release()
        self._redis.close()

    def hold(self, hosts: Iterable[str], give_up: Callable[[], bool]) -> Held:
        """Take a lease on every host, all or none, retrying while another task holds one.

        ``"done"`` when ``give_up()`` says the work is no longer needed (another copy finished the shard);
        ``"busy"`` when the leases stayed taken for two TTLs: their holder is alive and renewing them (a
        dead one's would have expired), so this copy should go back to the queue rather than hold a worker
        process while it waits.
        """
        keys = sorted({_PREFIX + host for host in hosts})
        patience = time.monotonic() + 2 * self._ttl_ms / 1000
        waited = False
        while True:
            taken = self._each(keys, lambda pipe, key: pipe.set(key, self._token, nx=True, px=self._ttl_ms))
            if len(taken) == len(keys):
                with self._lock:
                    self._held = keys
                return "held"
            self._release(taken)  # all or none: two copies of a task never each wait on the other's half
            if not waited:
                busy = sorted(set(keys) - set(taken))
                log.info("waiting for host leases another task holds: %s", ", ".join(busy)[:300])
                waited = True
            if give_up():
                return "done"
            if time.monotonic() > patience:
                return "busy"
            time.sleep(_RETRY_S)

    def release(self) -> None:
        """Give back every lease still held by this task."""
        with self._lock:
            held, self._held = self._held, []
        self._release_quietly(held)

    def _each(self, keys: list[str], command: Callable[[Pipeline, str], object]) -> list[str]:
        """``command`` on every key in one round trip (a pipeline, not a transaction: each command is
        atomic alone, which is all a lease needs); the keys it answered true for. A shard of thousands
        of hosts took as many round trips per renewal, which a slow link to Redis could stretch past the
        TTL."""
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            command(pipe, key)
        return [key for key, answer in zip(keys, pipe.execute(), strict=True) if answer]

    def _release(self, keys: list[str]) -> None:
        self._each(keys, lambda pipe, key: pipe.eval(_RELEASE, 1, key, self._token))

    def _release_quietly(self, keys: list[str]) -> None:
        try:
            self._release(keys)
        except redis.RedisError as exc:  # Redis away: the leases expire after their TTL anyway
            log.warning("cannot release host leases: %s", exc)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._ttl_ms / 3000):
            with self._lock:
                held = list(self._held)
            try:
                renewed = self._each(
                    held, lambda pipe, key: pipe.eval(_RENEW, 1, key, self._token, self._ttl_ms)
                )
            except redis.RedisError as exc:  # Redis away: the leases may expire unseen; stop checking
                log.warning("cannot renew host leases: %s", exc)
                self.lost.set()
                continue
            if len(renewed) < len(held):
                lost = sorted(set(held) - set(renewed))
                log.warning("lease %s was lost (expired and taken by another task)", ", ".join(lost)[:300])
                self.lost.set()
