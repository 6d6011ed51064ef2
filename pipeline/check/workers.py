"""The worker pool of one ``pipeline.check.check_links`` call, and where its observations go.

Reads no settings itself: ``check`` passes the concurrency and the page size. Workers take URLs from the
host queue (``pipeline.check.queue``), check each with the function ``check`` hands over, and pass every
observation through the soft-404 judgement (``pipeline.check.soft404``) to the caller's callback and results.

The soft-404 probe of a host (``add_probes``: one random URL that cannot exist, first in the host's queue)
is not a result: its answer becomes the host's fingerprint. Pages of that host that arrive while the
probe is still in flight are held (a handful at most: the host's slots) and judged when it answers.
A page whose only sign is its likeness to the probe's answer (``soft404.looks_like_probe``) is held too,
until the host shows a distinct page (then it is a soft 404) or the run ends (then it is ``ok``: a host
whose every page looks like its probe's answer, a single-page app's shell, is ambiguous).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from pipeline.check import soft404
from pipeline.check.kept import Kept
from pipeline.check.queue import Host, HostQueue
from pipeline.models import ANSWERED, Observation


class CheckOne(Protocol):
    """Checks one URL while holding a slot on its host (``once``: no retries)."""

    def __call__(
        self, url: str, parsed: httpx.URL, host: Host, want: int | None, *, once: bool = False
    ) -> Awaitable[Observation]: ...


def add_probes(hosts: dict[str, Host], wanted: MutableMapping[str, int], page_bytes: int) -> dict[str, str]:
    """Put one soft-404 probe first in the queue of each host that has pages to compare; probe URL -> host."""
    probes: dict[str, str] = {}
    for host in hosts.values():
        page = next((url for url in host.pending if wanted.get(url, 0) >= page_bytes), None)
        if page is None:
            continue
        probe = probe_of(page)
        host.pending.appendleft(probe)
        wanted[probe] = page_bytes
        probes[probe] = host.key
    return probes


def probe_of(page: str) -> str:
    """The soft-404 probe URL of the host serving ``page``."""
    parts = urlsplit(page)
    return soft404.probe_url(f"{parts.scheme}://{parts.netloc}")


class Workers:
    """Runs the workers and hands each observation on, judged for soft 404s."""

    def __init__(
        self,
        results: dict[str, Observation] | None,
        wanted: Mapping[str, int | None],
        probes: dict[str, str],
        on_result: Callable[[Observation], None] | None,
        keep_pages: bool,
        *,
        fed: bool = False,
    ) -> None:
        self.results = results  # None: the caller's callback is all that sees the observations
        self.wanted = wanted
        self.probes = probes  # probe URL -> host key
        self.on_result = on_result
        self.keep_pages = keep_pages
        self.fingerprints: dict[str, soft404.Fingerprint | None] = {}  # host key -> its probe's answer
        # Pages of a host whose probe has not answered yet (only while it is in flight, on that host).
        self.held: dict[str, list[Observation]] = {key: [] for key in probes.values()}
        # Pages that look like their host's probe answer, per host, until the host shows another page.
        self.alike: dict[str, list[Observation]] = {}
        self.distinct: set[str] = set()  # host keys that served a page unlike their probe's answer
        # Fed while the read pass runs (``pipeline.check.stream``), a host's first page, and so its probe, may
        # come after some of its answers: those a probe could judge wait until it is sent (or never is).
        self.unprobed: dict[str, list[Observation]] | None = {} if fed else None
        self._kept = Kept(keep_pages)

    def probe_added(self, probe: str, key: str) -> None:
        """A probe was queued first on host ``key``: the answers held for want of one now wait for it."""
        self.probes[probe] = key
        self.held[key] = self.unprobed.pop(key, []) if self.unprobed is not None else []

    def _emit(self, obs: Observation, probe: soft404.Fingerprint | None) -> None:
        obs = soft404.judge(obs, probe)
        if self.on_result is not None:
            self.on_result(obs)
        if self.results is not None:
            self.results[obs.url] = self._kept(obs)

    def _arrived(self, obs: Observation, host: Host) -> None:
        key = self.probes.get(obs.url)
        if key is not None:
            page = obs.page if obs.outcome in ANSWERED else None
            self.fingerprints[key] = soft404.fingerprint(page, obs.url) if page is not None else None
            for waiting in self.held.pop(key, []):
                self._settle(waiting, key)
        elif host.key in self.held and (obs.page is not None or obs.redirects) and obs.outcome in ANSWERED:
            self.held[host.key].append(obs)
        elif (
            self.unprobed is not None
            and host.key not in self.fingerprints
            and (obs.page is not None or obs.redirects)
            and obs.outcome in ANSWERED
        ):
            self.unprobed.setdefault(host.key, []).append(obs)
        else:
            self._settle(obs, host.key)

    def _settle(self, obs: Observation, key: str) -> None:
        """Emit a page judged against its host's probe, or hold it while the likeness alone would decide."""
        probe = self.fingerprints.get(key)
        if key not in self.distinct and soft404.looks_like_probe(obs, probe):
            self.alike.setdefault(key, []).append(obs)
            return
        if key not in self.distinct and soft404.is_distinct(obs, probe):
            self.distinct.add(key)
            for alike in self.alike.pop(key, []):
                self._emit(alike, probe)
        self._emit(obs, probe)

    async def run(
        self, check: CheckOne, hosts: dict[str, Host], scheduler: HostQueue, concurrency: int
    ) -> None:
        """Check every queued URL with at most ``concurrency`` workers."""

        async def worker() -> None:
            while (item := await scheduler.take()) is not None:
                host, url, parsed = item
                try:
                    obs = await check(url, parsed, host, self.wanted.get(url), once=url in self.probes)
                finally:
                    scheduler.done(host)
                self._arrived(obs, host)

        useful = sum(min(host.cap, len(host.pending)) for host in hosts.values())
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency if scheduler.feeding else min(concurrency, useful)):
                group.create_task(worker())
        for key, waiting in (self.unprobed or {}).items():
            for obs in waiting:
                self._settle(obs, key)  # the host never had a page to probe for
        self.unprobed = {} if self.unprobed is not None else None
        for alike in (obs for waiting in self.alike.values() for obs in waiting):
            self._emit(alike, None)  # the host showed no distinct page: when in doubt, ok
        self.alike.clear()
