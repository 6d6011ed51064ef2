"""``check_links``: the check stage given every URL at once (see :mod:`pipeline.check`, which names it).

Imported on first use of ``pipeline.check.check_links`` (or ``check_links_sync``): the HTTP stack it needs
(aiohttp, httpx) is not loaded by a process that only imports the check's light parts (``soft404``,
``retry``) or hands the check to its own process (``pipeline.checkprocess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import threading
from collections import ChainMap, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, cast

import httpx

from pipeline.accept import HostRules
from pipeline.check.attempt import _Checker, _host_port
from pipeline.check.hosts import HostControl
from pipeline.check.http import build_transport
from pipeline.check.queue import Host, HostQueue
from pipeline.check.urls import origin_of
from pipeline.check.workers import Workers, add_probes
from pipeline.errors import Interrupted
from pipeline.models import Observation, Outcome, Validators, host_key
from pipeline.runreport import HostStats

if TYPE_CHECKING:  # the settings are read, never built, here: the check's process loads no pydantic
    from pipeline.config import Settings


def _target(url: str) -> tuple[str, httpx.URL] | Observation:
    """The host key and parsed origin (scheme, host, port) of a URL to request, or the observation saying
    it cannot be."""
    # httpx parses a URL in ~30 us, and the worker that requests it parses it again: here only its origin
    # is parsed, once per origin. For an http(s) URL of printable characters that is the same verdict:
    # httpx refuses such a URL only for its scheme, user, host or port (the path, query and fragment are
    # quoted, never refused; a path after an authority starts with "/" by construction). Anything else,
    # and every refusal (for httpx's own message), goes through the whole parse.
    origin = origin_of(url)
    if origin is not None:
        target = _origin_target(origin)
        if not isinstance(target, Observation):
            return target
    return _parsed_target(url)


def _parsed_target(url: str) -> tuple[str, httpx.URL] | Observation:
    try:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("not an http(s) URL")
        return host_key(str(parsed)), parsed
    except (httpx.InvalidURL, ValueError) as exc:
        return Observation(url, Outcome.SKIPPED, reason=f"not a URL we can request: {exc}")


_origin_target = functools.lru_cache(maxsize=4096)(_parsed_target)  # a corpus has far fewer hosts than URLs


def _new_host(key: str, parsed: httpx.URL, rules: HostRules, settings: Settings) -> Host:
    control = HostControl(rules.concurrency(*_host_port(parsed)), settings.retry.retry_after_max)
    return Host(key, deque(), control, settings.http.min_host_interval)


def _group(urls: Iterable[str], settings: Settings) -> tuple[dict[str, Host], dict[str, Observation]]:
    hosts: dict[str, Host] = {}
    invalid: dict[str, Observation] = {}
    rules = HostRules.from_settings(settings.http)
    for url in dict.fromkeys(urls):
        target = _target(url)
        if isinstance(target, Observation):
            invalid[url] = target
            continue
        key, parsed = target
        host = hosts.get(key)
        if host is None:
            host = hosts[key] = _new_host(key, parsed, rules, settings)
        host.pending.append(url)
    return hosts, invalid


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """The cyclic collector kept out of the way while checking (see the figures below)."""
    # Everything alive now (the queued URLs included) outlives the check: keep the cyclic collector
    # from rescanning it after every few thousand requests (26% faster at 100,000 URLs, pipeline.tools.bench).
    # A caller that froze its own objects first (the runner, ``memory.keep_from_collections``) thaws
    # them itself: unfreezing here would hand its whole corpus back to the collector mid-run.
    frozen_by_caller = gc.get_freeze_count() > 0
    gc.freeze()
    # Requests leave almost no cyclic garbage (one object per ~10 requests), yet their allocations ran a
    # young collection every ~700: collect every 10,000 instead while checking (gc time 0.33 s -> 0.06 s at
    # 20,000 URLs, pipeline.tools.bench's server), and restore the caller's thresholds after.
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 10_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_by_caller:
            gc.unfreeze()


async def check_links(
    urls: Iterable[str],
    settings: Settings,
    *,
    fetch_body: Mapping[str, int] | None = None,
    on_result: Callable[[Observation], None] | None = None,
    keep_pages: bool = True,
    validators: Mapping[str, Validators] | None = None,
    host_stats: dict[str, HostStats] | None = None,
    keep_observations: bool = True,
) -> dict[str, Observation]:
    """Request every unique URL once (and each URL of ``fetch_body``) and return its observation.

    ``on_result`` sees each observation as it arrives, page included; with ``keep_pages=False`` the
    returned observations drop their page bodies (the callback has digested them), keeping memory flat.
    ``validators`` (URL -> stored ETag, Last-Modified) make those requests conditional; ``host_stats``,
    when given, receives each host's politeness figures (429s, 503s, pauses, lowest concurrency, 304s).
    With ``keep_observations=False`` only ``on_result`` sees the requested URLs' observations (the image
    probes: what they measured is all the caller needs); the result holds only the unrequestable URLs.
    """
    # The soft-404 probes' sizes go in front of the caller's map, not into a copy of it (the image probes
    # of a large corpus hand over hundreds of thousands of URLs).
    wanted = ChainMap[str, int]({}, cast(MutableMapping[str, int], fetch_body or {}))  # only read
    hosts, results = _group(itertools.chain(urls, fetch_body or ()), settings)
    if on_result is not None:
        for obs in results.values():
            on_result(obs)
    probes = add_probes(hosts, wanted, settings.http.max_page_bytes) if settings.http.soft404_probe else {}
    scheduler = HostQueue(hosts)
    if scheduler.remaining == 0:
        return results
    with _few_collections():
        run = Workers(results if keep_observations else None, wanted, probes, on_result, keep_pages)
        async with build_transport(settings) as transport:
            checker = _Checker(transport, settings, scheduler, validators or {})
            await run.run(checker.check, hosts, scheduler, settings.http.max_concurrency)
        # A TLS connection whose handshake failed finishes closing a few loop turns after the session is
        # closed; without this pause asyncio.run() can drop its socket (ResourceWarning: unclosed transport).
        if checker.used_tls:
            await asyncio.sleep(0.05)
    if host_stats is not None:
        host_stats.update({key: host.control.stats(key) for key, host in hosts.items()})
    return results


def check_links_sync(
    urls: Iterable[str],
    settings: Settings,
    *,
    fetch_body: Mapping[str, int] | None = None,
    on_result: Callable[[Observation], None] | None = None,
    keep_pages: bool = True,
    validators: Mapping[str, Validators] | None = None,
    host_stats: dict[str, HostStats] | None = None,
    stop: threading.Event | None = None,
    keep_observations: bool = True,
) -> dict[str, Observation]:
    """``check_links`` for callers without an event loop (the runner, a worker process).

    When ``stop`` is set the check is cancelled within a fifth of a second and ``Interrupted`` is raised.
    """

    async def main() -> dict[str, Observation]:
        task = asyncio.ensure_future(
            check_links(
                urls,
                settings,
                fetch_body=fetch_body,
                on_result=on_result,
                keep_pages=keep_pages,
                validators=validators,
                host_stats=host_stats,
                keep_observations=keep_observations,
            )
        )
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if stop is not None and stop.is_set():
                task.cancel()
                raise Interrupted
        return task.result()

    return asyncio.run(main())
