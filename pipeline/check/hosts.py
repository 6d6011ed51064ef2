"""Adaptive politeness for one host: pause when asked, slow down under pressure, then recover.

Reads no settings itself: ``check`` builds one ``HostControl`` per host from ``http.per_host_concurrency``
(the ceiling) and ``retry.retry_after_max`` (the longest pause). Pure bookkeeping on an injected clock
(``time.monotonic`` in the checker, a fake one in tests); no I/O, no sleeping.

The rules (lychee's per-host backoff, plus TCP's additive-increase/multiplicative-decrease for the slots):

- A 429 or 503 pauses the whole host until its ``Retry-After`` (capped at ``pause_max``) or, without one,
  for an exponential backoff (0.5 s, doubling, capped at 30 s; reset by a success), and halves the host's
  concurrency (at least 1). Answers to requests sent before the last halving are the same congestion
  signal seen late: they extend the pause but do not halve again. A URL's own retry answering 429/503
  again (``repeat``: one broken page, not news about the host) pauses the host, at least for its
  Retry-After, but neither grows the backoff nor halves again.
- After a window of successes in a row (as many as the current concurrency, at least ``RECOVER_AFTER``)
  the concurrency climbs back by one, up to ``max_cap``; the pause is only a not-before time, so nothing
  of it outlives it.
- ``RateLimit-Remaining: 0`` (or ``X-RateLimit-Remaining``, or ``RateLimit: r=0``) with a reset time pauses
  the host until that reset (capped), without halving: the server told us its quota, not its distress.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipeline.runreport import HostStats

BACKOFF_START = 0.5  # seconds; lychee's first 429 backoff
BACKOFF_MAX = 30.0  # seconds; lychee's cap
RECOVER_AFTER = 2  # fewest successes in a row that earn one more slot (else: the current concurrency)
_EPOCH_FLOOR = 1e9  # a reset value this large is a Unix time (GitHub's X-RateLimit-Reset), not seconds

_REMAINING = ("ratelimit-remaining", "x-ratelimit-remaining", "x-rate-limit-remaining")
_RESET = ("ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset")
# The structured field of the IETF draft: `RateLimit: "default";r=0;t=30` (older drafts: remaining=, reset=).
_FIELD_REMAINING = re.compile(r"(?:^|[;,\s])(?:r|remaining)\s*=\s*(\d+)")
_FIELD_RESET = re.compile(r"(?:^|[;,\s])(?:t|reset)\s*=\s*(\d+(?:\.\d+)?)")


def _number(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value.strip())
        except ValueError:
            continue
        if number >= 0 and number == number:  # not NaN
            return number
    return None


def quota_reset(headers: Mapping[str, str], wall_now: float) -> float | None:
    """Pure: seconds until the rate-limit quota resets when the headers say none is left, else None.

    ``headers`` has lower-cased names; ``wall_now`` is Unix time, for resets sent as a Unix time.
    """
    remaining = _number(headers, _REMAINING)
    reset = _number(headers, _RESET)
    combined = headers.get("ratelimit")
    if combined is not None:
        if remaining is None and (found := _FIELD_REMAINING.search(combined)):
            remaining = float(found.group(1))
        if reset is None and (found := _FIELD_RESET.search(combined)):
            reset = float(found.group(1))
    if remaining is None or remaining > 0 or reset is None:
        return None
    if reset >= _EPOCH_FLOOR:
        reset -= wall_now
    return max(0.0, reset)


@dataclass(slots=True)
class HostControl:
    """The adaptive limits of one host: its current slot count and the time before which it must wait."""

    max_cap: int
    pause_max: float
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    cap: int = 0
    paused_until: float = 0.0  # on ``clock``; 0 while never paused (the fast path reads no clock)
    backoff: float = 0.0  # the last pause without Retry-After; 0 when the last answer was a success
    streak: int = 0  # successes since the last pressure signal or the last climb
    last_decrease: float = float("-inf")
    got_429: int = 0
    got_503: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    lowest_cap: int = 0
    not_modified: int = 0

    def __post_init__(self) -> None:
        self.max_cap = max(1, self.max_cap)
        self.cap = self.lowest_cap = self.max_cap

    def observe(
        self,
        status: int,
        headers: Mapping[str, str] | None,
        retry_after: float | None,
        sent_at: float,
        *,
        repeat: bool = False,
    ) -> None:
        """An HTTP answer from this host to a request sent at ``sent_at`` (on ``clock``).

        ``headers`` (lower-case names) only when the answer has rate-limit headers; None skips them.
        ``repeat``: a retry of a URL that already answered 429/503 in this run.
        """
        if status == 304:
            self.not_modified += 1
        if status in (429, 503):
            self._pressure(status, retry_after, sent_at, repeat)
            return
        if 200 <= status < 500:
            self._success()
        if headers is None:
            return
        reset = quota_reset(headers, self.wall_clock())
        if reset is not None:
            self._pause_for(reset)

    def _pressure(self, status: int, retry_after: float | None, sent_at: float, repeat: bool) -> None:
        if status == 429:
            self.got_429 += 1
        else:
            self.got_503 += 1
        self.streak = 0
        if retry_after is not None:
            pause = retry_after
        elif repeat:
            pause = self.backoff or BACKOFF_START
        else:
            self.backoff = BACKOFF_START if self.backoff == 0 else min(BACKOFF_MAX, self.backoff * 2)
            pause = self.backoff
        self._pause_for(pause)
        if sent_at >= self.last_decrease and not repeat:
            self.cap = max(1, self.cap // 2)
            self.lowest_cap = min(self.lowest_cap, self.cap)
            self.last_decrease = self.clock()

    def _success(self) -> None:
        self.backoff = 0.0
        if self.cap >= self.max_cap:
            return
        self.streak += 1
        if self.streak >= max(RECOVER_AFTER, self.cap):
            self.cap += 1
            self.streak = 0

    def _pause_for(self, seconds: float) -> None:
        seconds = min(seconds, self.pause_max)
        if seconds <= 0:
            return
        now = self.clock()
        until = now + seconds
        if until <= self.paused_until:
            return
        if self.paused_until <= now:
            self.pauses += 1
            self.paused_seconds += seconds
        else:
            self.paused_seconds += until - self.paused_until
        self.paused_until = until

    def stats(self, host: str) -> HostStats:
        """This run's figures for ``host``."""
        return HostStats(
            host,
            self.got_429,
            self.got_503,
            self.pauses,
            round(self.paused_seconds, 3),
            self.lowest_cap,
            self.not_modified,
        )
