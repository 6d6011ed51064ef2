"""The check stage fed while its URLs are still being found: :class:`CheckStream`.

Reads the settings ``check_links`` reads (``http.*``, ``retry.*``). Returns the same ``dict[url,
Observation]`` as ``check_links`` given every URL at once.

The politeness bound of a check is set by the per-host limits, so time spent before the first request is
pure overhead: the runner's read pass hands over each batch of due URLs as it finds them (``put``, from
its own thread) and the checks run meanwhile on an event loop in a thread of their own. Each host's queue
keeps the order the URLs came in; a host's soft-404 probe goes first in its queue once its first page
comes, and a host's answers that such a probe judges wait for it (or for the end, when no page comes).
A URL handed over again with another body size (seen in an image field, then in a page field) goes out
with the new size when it has not been requested yet, else once more after the first request ended, so
the last observation is the one a single ``check_links`` call would have made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import httpx

from pipeline.accept import HostRules
from pipeline.check.attempt import _Checker
from pipeline.check.batch import _few_collections, _new_host, _target
from pipeline.check.http import build_transport
from pipeline.check.queue import Host, HostQueue
from pipeline.check.workers import Workers, probe_of
from pipeline.errors import Interrupted
from pipeline.models import Observation, Validators
from pipeline.runreport import HostStats

if TYPE_CHECKING:  # the settings are read, never built, here: the check's process loads no pydantic
    from pipeline.config import Settings

_POLL = 0.2  # seconds between looks at the stop request while waiting for the checks to end
_Targets = dict[str, tuple[str, httpx.URL] | Observation]  # URL -> host key, parsed origin (``_target``)


class CheckStream:
    """Checks URLs handed over in batches while the caller goes on finding more.

    ``start`` begins (an event loop in a thread), ``put`` hands over a batch, ``finish`` says no more will
    come and returns every observation; ``cancel`` stops at once (idempotent). ``on_result`` is called on
    the check's thread, as ``check_links`` calls it on its event loop. With ``keep_observations=False``
    only ``on_result`` sees the observations of the URLs requested (the check's own process: its parent
    keeps them); ``finish`` then returns those of the URLs that could not be requested.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_result: Callable[[Observation], None] | None = None,
        keep_pages: bool = True,
        host_stats: dict[str, HostStats] | None = None,
        stop: threading.Event | None = None,
        keep_observations: bool = True,
    ) -> None:
        self._settings = settings
        self._on_result = on_result
        self._keep_pages = keep_pages
        self._keep_observations = keep_observations
        self._host_stats = host_stats
        self._stop = stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: _Session | None = None
        self._task: asyncio.Task[dict[str, Observation]] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="check", daemon=True)
        self._outcome: dict[str, Observation] | BaseException | None = None
        self._failed: Exception | None = None  # a batch could not be queued

    def start(self) -> None:
        """Start the event loop; returns once it takes batches."""
        self._thread.start()
        self._ready.wait()

    def put(
        self, urls: Sequence[str], fetch_body: Mapping[str, int], validators: Mapping[str, Validators]
    ) -> None:
        """Check these URLs too (``fetch_body``: body size wanted per URL; ``validators``: stored ones)."""
        if urls and self._loop is not None and self._session is not None:
            # Parsed here, on the caller's thread: on the loop, a batch's parsing held up every answer
            # waiting to be read (and so the next request on each of those connections) for milliseconds.
            targets = {url: _target(url) for url in urls}
            self._call(self._add, targets, dict(fetch_body), dict(validators))

    def _add(self, targets: _Targets, fetch_body: dict[str, int], validators: dict[str, Validators]) -> None:
        # On the loop: an error here would only be logged by asyncio, so it ends the check instead.
        assert self._session is not None and self._task is not None
        try:
            self._session.add(targets, fetch_body, validators)
        except Exception as exc:
            self._failed = exc
            self._task.cancel()

    def finish(self) -> dict[str, Observation]:
        """No more URLs: wait for the checks to end and return every observation.

        Raises ``Interrupted`` within a fifth of a second of a stop request (the checks are cancelled).
        """
        if self._loop is not None and self._session is not None:
            self._call(self._session.close)
        while self._thread.is_alive():
            self._thread.join(_POLL)
            if self._stop is not None and self._stop.is_set():
                self.cancel()
                raise Interrupted
        self._session = None  # its hosts and bookkeeping are done with; the observations go to the caller
        self._task = None  # its result is the observations: not kept here once handed over
        if self._failed is not None:
            raise self._failed
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        outcome, self._outcome = self._outcome, None
        return outcome

    def cancel(self) -> None:
        """Stop checking now and wait for the check's thread to end."""
        if self._task is not None and self._thread.is_alive():
            self._call(self._task.cancel)
        if self._thread.ident is not None:
            self._thread.join()

    def _call(self, callback: Callable[..., object], *args: object) -> None:
        """``callback(*args)`` on the check's loop; nothing once that loop has ended: the check failed (a
        batch could not be queued) and ``finish`` raises why, not that the loop is closed."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(callback, *args)

    def _main(self) -> None:
        async def main() -> dict[str, Observation]:
            self._loop = asyncio.get_running_loop()
            self._session = _Session(
                self._settings, self._on_result, self._keep_pages, self._keep_observations
            )
            self._task = asyncio.ensure_future(self._session.run(self._host_stats))
            self._ready.set()
            return await self._task

        try:
            self._outcome = asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread by finish()
            self._outcome = exc
        finally:
            self._ready.set()


class _Session:
    """The event loop's side: hosts, queue and workers that grow with each batch."""

    def __init__(
        self,
        settings: Settings,
        on_result: Callable[[Observation], None] | None,
        keep_pages: bool,
        keep_observations: bool = True,
    ) -> None:
        self.settings = settings
        self.on_result = on_result
        self.rules = HostRules.from_settings(settings.http)
        self.hosts: dict[str, Host] = {}
        self.results: dict[str, Observation] = {}
        self.wanted: dict[str, int | None] = {}  # every URL handed over: the body size it is asked with
        self.validators: dict[str, Validators] = {}
        self.scheduler = HostQueue(self.hosts, feeding=True)
        kept = self.results if keep_observations else None
        self.workers = Workers(kept, self.wanted, {}, on_result, keep_pages, fed=True)
        self.queued: set[str] = set()  # handed to the queue, not yet requested
        self.unusable: set[str] = set()  # not URLs we can request: observed once, never requested
        self.asked: dict[str, asyncio.Event] = {}  # URL in flight -> set when its request has ended
        self.probed: set[str] = set()  # host keys given a soft-404 probe

    def add(self, targets: _Targets, fetch_body: dict[str, int], validators: dict[str, Validators]) -> None:
        page_bytes = self.settings.http.max_page_bytes
        for url, target in targets.items():
            want = fetch_body.get(url)
            if url in self.wanted and (self.wanted[url] == want or url in self.unusable):
                continue
            self._want(url, want, validators.get(url))
            if url in self.queued:
                continue  # not requested yet: it goes out with what is wanted now
            if isinstance(target, Observation):
                self.unusable.add(url)
                self.results[url] = target
                if self.on_result is not None:
                    self.on_result(target)
                continue
            key, parsed = target
            host = self.hosts.get(key) or _new_host(key, parsed, self.rules, self.settings)
            if (want or 0) >= page_bytes and key not in self.probed and self.settings.http.soft404_probe:
                self.probed.add(key)
                probe = probe_of(url)
                self.wanted[probe] = page_bytes
                self.scheduler.add(host, probe, first=True)
                self.workers.probe_added(probe, key)
            self.queued.add(url)
            self.scheduler.add(host, url)

    def _want(self, url: str, want: int | None, validators: Validators | None) -> None:
        self.wanted[url] = want
        if validators is not None:
            self.validators[url] = validators

    def close(self) -> None:
        self.scheduler.close()

    async def run(self, host_stats: dict[str, HostStats] | None) -> dict[str, Observation]:
        with _few_collections():
            async with build_transport(self.settings) as transport:
                checker = _Checker(transport, self.settings, self.scheduler, self.validators)

                async def check(
                    url: str, parsed: httpx.URL, host: Host, want: int | None, *, once: bool = False
                ) -> Observation:
                    self.queued.discard(url)
                    before = self.asked.get(url)
                    done = self.asked[url] = asyncio.Event()
                    try:
                        if before is not None:
                            await before.wait()  # asked again with another size: after the first ends
                        return await checker.check(url, parsed, host, self.wanted.get(url), once=once)
                    finally:
                        done.set()
                        if self.asked.get(url) is done:
                            del self.asked[url]

                await self.workers.run(check, self.hosts, self.scheduler, self.settings.http.max_concurrency)
            if checker.used_tls:
                await asyncio.sleep(0.05)  # as in check_links: let failed TLS handshakes finish closing
        if host_stats is not None:
            host_stats.update({key: host.control.stats(key) for key, host in self.hosts.items()})
        return self.results
