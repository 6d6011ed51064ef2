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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.check.batch import (
        _few_collections,
        _group,
        _new_host,
        _target,
        check_links,
        check_links_sync,
    )

__all__ = ["_few_collections", "_group", "_new_host", "_target", "check_links", "check_links_sync"]


def __getattr__(name: str) -> Any:
    # The stage's entry points live in ``batch``, loaded when first asked for: importing any module of this
    # package (``soft404`` for the page guard, ``retry`` for the archive) then costs no aiohttp or httpx,
    # about 0.1 s of start-up that a run checking in its own process (``pipeline.checkprocess``) never needs.
    if name in __all__:
        from pipeline.check import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
