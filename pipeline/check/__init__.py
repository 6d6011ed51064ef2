"""The check stage: unique URLs -> one ``Observation`` each (:func:`check_links`).

Modules: ``attempt`` (one request and its redirect hops), ``retry`` (pure retry decisions), ``hosts`` (the
per-host adaptive controller), ``queue`` (host-sharded queue), ``workers`` (the worker pool and soft-404
probes), ``http`` (the transport, address guard, size caps), ``soft404``.

Reads settings ``http.*`` (through ``pipeline.check.http.build_transport`` and ``Sender``; here:
``max_concurrency``, ``per_host_concurrency``, ``min_host_interval``, ``total_timeout``, ``max_redirects``,
``max_decompressed_bytes``, ``max_page_bytes``, ``allow_networks``) and ``retry.*``.
Returns ``dict[url, Observation]``; no httpx object leaves this module, and a failing link is a value,
never an exception.

How a URL is checked:

- HEAD first; GET when HEAD is refused or fails at the HTTP level (any 4xx/5xx but 429, or a broken
  response), or straight away when the caller wants the body (``fetch_body``: one GET serves the link
  check and the metadata). Bodies are streamed and capped; an HTML page stops at ``</head>``. A body
  wanted with fewer than ``http.max_page_bytes`` bytes (an image probe) is asked for with ``Range``.
- Redirects are followed by hand, so every hop is checked by the address guard and recorded; a URL seen
  twice, or more than ``max_redirects`` hops, is a redirect loop. The first hop decides "moved":
  a 301/308 there means the article's URL itself has permanently moved.
- Transient failures (408, 429, 5xx, timeouts, resets) are retried with tenacity: exponential backoff with
  jitter, ``Retry-After`` honoured up to ``retry.retry_after_max`` (longer: stop and report as it stands).
  A retry waits with its host slot given back and queues for a slot again, so it obeys the host's limits.
- Work is host-sharded (``pipeline.check.queue``): URLs are grouped by ``host:port`` and a pool of
  ``max_concurrency`` workers takes from hosts round-robin, never more than ``per_host_concurrency`` in
  flight per host, starts spaced by ``min_host_interval``. Every HTTP answer feeds the adaptive controller
  of the host that sent it (``pipeline.check.hosts``; a redirect target's, not the original's): a 429 or
  503 pauses all of that host, retries included, and halves its concurrency, which climbs back on
  successes; ``RateLimit-*`` headers pause it until the quota resets.
- Conditional rechecks: a URL given stored validators (``validators``: ETag, Last-Modified) is asked with
  ``If-None-Match``/``If-Modified-Since``; a 304 is success with no body read (the stored metadata stands).
- Soft 404s (``pipeline.check.soft404``): a 2xx page whose title says it is missing, a deep URL redirected to
  its site's front page, or a page identical to the host's answer to a random URL that cannot exist, is a
  hard failure. That probe is one GET per host that has pages to compare (``fetch_body`` at
  ``max_page_bytes``), sent first through the host's queue so it obeys the host's limits, never retried;
  the host's pages wait for its answer before they are handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import threading
from collections import ChainMap, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import cast

import httpx

from pipeline.accept import HostRules
from pipeline.check.attempt import _Checker, _host_port
from pipeline.check.hosts import HostControl
from pipeline.check.http import build_transport
from pipeline.check.queue import Host, HostQueue
from pipeline.check.workers import Workers, add_probes
from pipeline.config import Settings
from pipeline.errors import Interrupted
from pipeline.models import Observation, Outcome, Validators, host_key
from pipeline.runreport import HostStats


def _target(url: str) -> tuple[str, httpx.URL] | Observation:
    """The host key and parsed URL of a URL to request, or the observation saying it cannot be."""
    try:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("not an http(s) URL")
        return host_key(str(parsed)), parsed
    except (httpx.InvalidURL, ValueError) as exc:
        return Observation(url, Outcome.SKIPPED, reason=f"not a URL we can request: {exc}")


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
