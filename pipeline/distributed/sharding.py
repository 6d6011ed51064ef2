"""Shards of the check's work for the workers: whole hosts packed into groups, one Celery task each.

Reads: the URLs, ``http.per_host_concurrency`` and ``http.max_concurrency`` (passed in), and how many
worker processes answered. Returns: lists of URLs. Pure: no I/O.
"""

from __future__ import annotations

import functools
import heapq
import re

from pipeline.models import host_key

_MAX_SHARDS = 64  # few shards keep tasks cheap and each worker's pool full


def shards(urls: list[str], per_host: int, pool: int, processes: int = 1) -> list[list[str]]:
    """Whole hosts (by name, any scheme or port: :func:`shard_host`) packed into shards of about equal URL
    counts (largest host first).

    A worker process checks one shard at a time with a pool of ``pool`` (``http.max_concurrency``)
    requests, at most ``per_host`` per host: a shard holds enough hosts to fill that pool (a shard of
    3 hosts at 8 each would leave 104 of 128 places idle), and there are as many shards as the worker
    processes that answered (``processes``), hosts allowing, so that every process gets work: more would
    not make a host faster than its own cap but would queue shards behind each other on one process (16
    shards of 2 or 3 hosts took one worker 6 times as long as one process checking the same 40 hosts);
    at most ``_MAX_SHARDS``. When the pools need more shards than there are processes, the count is
    rounded down to a multiple of ``processes``: the processes then finish their last round together
    (13 pool-fulls on 4 processes: 12 shards a little over a pool each, 3 rounds, rather than 13 shards in
    4 rounds, the last of one shard while 3 processes idle).
    """
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault(shard_host(url) or "", []).append(url)
    slots = sum(min(per_host, len(group)) for group in by_host.values())
    count = max(1, min(len(by_host), _MAX_SHARDS, max(-(-slots // pool), processes)))
    if count > processes:
        count -= count % processes
    heap = [(0, index) for index in range(count)]
    groups: list[list[str]] = [[] for _ in range(count)]
    for key in sorted(by_host, key=lambda k: (-len(by_host[k]), k)):
        size, index = heapq.heappop(heap)
        groups[index].extend(by_host[key])
        heapq.heappush(heap, (size + len(by_host[key]), index))
    return [group for group in groups if group]


def shard_host(url: str) -> str | None:
    """The host name a URL is sharded and leased by: its host key without the port, so ``http://h`` and
    ``https://h`` (one server, one politeness budget) land in one shard; None for a URL without one (a port
    that is not a number: the worker reports it as invalid)."""
    # The key depends only on the scheme and the authority: parsed once per origin, not once per URL (the
    # coordinator asks for every due URL, 20,000 parses were a tenth of a second before the first shard).
    origin = _ORIGIN.match(url)
    return _origin_host(origin.group() if origin else url)


_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")  # "scheme://authority", where urlsplit ends the authority


@functools.lru_cache(maxsize=4096)
def _origin_host(origin: str) -> str | None:
    try:
        return str(host_key(origin)).rsplit(":", 1)[0]
    except ValueError:
        return None
