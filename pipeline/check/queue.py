"""Per-host scheduling for ``pipeline.check``: which URL a worker requests next, and when.

Reads no settings itself: ``check`` builds each ``Host`` from ``http.per_host_concurrency`` and
``http.min_host_interval``. Returns work items (host, url, parsed URL) to workers; no I/O. A host's
untried URLs wait as their text and are parsed when taken: a parsed ``httpx.URL`` costs about 400 bytes,
and the share images' probes of a large corpus queue hundreds of thousands of URLs at once.

A host is a slot count and a not-before time, both owned by its adaptive controller
(``pipeline.check.hosts.HostControl``: paused and halved on 429/503, recovering on successes), plus the
fixed spacing ``min_host_interval`` (``next_start``). Every request to a host holds one of its slots,
first attempts and retries alike: a retry gives its slot back while it waits and asks for one again
(``reacquire``), ahead of the host's untried URLs, so a pause holds the whole host, retries included. A
host that must wait is parked on a loop timer, never on a sleeping worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import httpx

from pipeline.check.hosts import HostControl
from pipeline.check.urls import request_url

STALL_AFTER = 5.0  # seconds without an answer after which a request no longer holds a halved host's slot


@dataclass(slots=True)
class Host:
    """One ``host:port``: its untried URLs, its limits and its bookkeeping."""

    key: str
    pending: deque[str]  # untried URLs, parsed when taken
    control: HostControl
    interval: float
    inflight: int = 0
    stalled: int = 0  # in flight for longer than STALL_AFTER, counted only against the configured ceiling
    queued: bool = False
    next_start: float = 0.0  # time.monotonic(); 0 while the host has neither interval nor pause
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)  # retries asking for a slot
    timer: asyncio.TimerHandle | None = None

    @property
    def cap(self) -> int:
        """Requests allowed in flight now (the controller's current concurrency)."""
        return self.control.cap

    @property
    def reduced(self) -> bool:
        """Whether the controller holds the host below its configured concurrency."""
        return self.control.cap < self.control.max_cap


@dataclass(slots=True)
class HostQueue:
    """Hands URLs to workers: round-robin over hosts, at most ``cap`` in flight per host.

    Workers share one event loop, so the bookkeeping needs no lock; a worker only awaits when no host
    has pending URLs, a free slot and its not-before time passed.
    """

    hosts: dict[str, Host]
    ready: deque[Host] = field(default_factory=deque)
    remaining: int = 0
    idle: deque[asyncio.Future[None]] = field(default_factory=deque)
    feeding: bool = False  # URLs may still be added (``add``): a worker with nothing to take waits

    def __post_init__(self) -> None:
        self.remaining = sum(len(h.pending) for h in self.hosts.values())
        for host in self.hosts.values():
            self._refresh(host)

    @staticmethod
    def _has_slot(host: Host) -> bool:
        # A halved host counts only its answering requests; a stalled one (a URL that will time out) must
        # not serialise it. The configured ceiling counts every request in flight.
        return host.inflight - host.stalled < host.control.cap and host.inflight < host.control.max_cap

    def _due(self, host: Host) -> bool:
        """Whether the host may start a request now; if not, a timer refreshes it when it may."""
        not_before = max(host.next_start, host.control.paused_until)
        if not_before == 0.0:
            return True  # the common case: no interval, never paused, no clock read
        delay = not_before - time.monotonic()
        if delay <= 0:
            return True
        if host.timer is None:
            host.timer = asyncio.get_running_loop().call_later(delay, self._timer_fired, host)
        return False

    def _timer_fired(self, host: Host) -> None:
        host.timer = None
        self._refresh(host)
        if host.queued:
            self._wake()

    def _started(self, host: Host) -> None:
        host.inflight += 1
        if host.interval > 0:
            host.next_start = max(time.monotonic(), host.next_start) + host.interval

    def _refresh(self, host: Host) -> None:
        while host.waiters and self._has_slot(host) and self._due(host):
            waiter = host.waiters.popleft()
            if not waiter.done():
                self._started(host)
                waiter.set_result(None)
        if not host.queued and host.pending and self._has_slot(host) and self._due(host):
            host.queued = True
            self.ready.append(host)

    def _wake(self, everyone: bool = False) -> None:
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    async def take(self) -> tuple[Host, str, httpx.URL] | None:
        """The next URL to request (its host slot is held), or None when no untried URL is left."""
        while True:
            while not self.ready:
                if self.remaining == 0 and not self.feeding:
                    return None
                waiter = asyncio.get_running_loop().create_future()
                self.idle.append(waiter)
                await waiter
            host = self.ready.popleft()
            host.queued = False
            # Queued when it was startable; a retry or a 429 since then may have taken that away.
            if host.pending and self._has_slot(host) and not host.waiters and self._due(host):
                break
            self._refresh(host)
        url = host.pending.popleft()
        self._started(host)
        self.remaining -= 1
        self._refresh(host)
        if self.remaining == 0 and not self.feeding:
            self._wake(everyone=True)  # idle workers can leave
        elif self.ready:
            self._wake()
        return host, url, request_url(url)

    def add(self, host: Host, url: str, *, first: bool = False) -> None:
        """Queue one more URL on ``host`` (a host not seen before joins); ``first`` puts it ahead of the
        host's other untried URLs (a soft-404 probe)."""
        self.hosts.setdefault(host.key, host)
        if first:
            host.pending.appendleft(url)
        else:
            host.pending.append(url)
        self.remaining += 1
        self._refresh(host)
        if host.queued:
            self._wake()

    def close(self) -> None:
        """No URL will be added any more: workers leave once the queued ones are taken."""
        self.feeding = False
        if self.remaining == 0:
            self._wake(everyone=True)

    def done(self, host: Host) -> None:
        """A request to ``host`` is over: free its slot."""
        host.inflight -= 1
        self._refresh(host)
        if host.queued:
            self._wake()

    def stall(self, host: Host, stalled: bool) -> None:
        """A request to ``host`` has been in flight for STALL_AFTER (``stalled``), or a stalled one ended."""
        host.stalled += 1 if stalled else -1
        self._refresh(host)
        if host.queued:
            self._wake()

    async def reacquire(self, host: Host) -> None:
        """Wait for a slot on ``host`` (cap and not-before time honoured), ahead of its untried URLs."""
        waiter = asyncio.get_running_loop().create_future()
        host.waiters.append(waiter)
        self._refresh(host)
        await waiter
