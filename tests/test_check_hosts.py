"""The adaptive per-host controller on a fake clock: pause, halve, recover, caps, RateLimit headers."""

from __future__ import annotations

import pytest

from pipeline.check.hosts import BACKOFF_MAX, RECOVER_AFTER, HostControl, quota_reset

NO_HEADERS: dict[str, str] = {}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def control(cap: int = 8, pause_max: float = 60.0) -> tuple[HostControl, FakeClock]:
    clock = FakeClock()
    return HostControl(cap, pause_max, clock=clock, wall_clock=lambda: 1_700_000_000.0), clock


def test_429_with_retry_after_pauses_the_host_and_halves_it() -> None:
    """A 429 with Retry-After: 2 pauses the host until two seconds from now and halves 8 slots to 4."""
    host, clock = control()
    host.observe(429, NO_HEADERS, 2.0, sent_at=clock.now)
    assert host.paused_until == clock.now + 2.0
    assert host.cap == 4
    assert (host.got_429, host.pauses, host.paused_seconds) == (1, 1, 2.0)


def test_retry_after_is_capped_by_pause_max() -> None:
    """A Retry-After longer than the cap pauses the host only for the cap."""
    host, clock = control(pause_max=5.0)
    host.observe(503, NO_HEADERS, 3600.0, sent_at=clock.now)
    assert host.paused_until == clock.now + 5.0
    assert host.got_503 == 1


def test_backoff_without_retry_after_doubles_to_its_cap_and_resets_on_success() -> None:
    """Without Retry-After, pauses grow 0.5, 1, 2 … up to 30 s; one success starts them at 0.5 s again."""
    host, clock = control()
    pauses = []
    for _ in range(9):
        clock.now = host.paused_until + 1.0  # each 429 comes after the previous pause
        host.observe(429, NO_HEADERS, None, sent_at=clock.now)
        pauses.append(host.paused_until - clock.now)
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_MAX, BACKOFF_MAX, BACKOFF_MAX]
    host.observe(200, NO_HEADERS, None, sent_at=clock.now)
    clock.now = host.paused_until + 1.0
    host.observe(429, NO_HEADERS, None, sent_at=clock.now)
    assert host.paused_until - clock.now == 0.5


def test_late_answers_to_earlier_requests_do_not_halve_again() -> None:
    """429s to requests sent before the host was halved extend its pause but halve it only once."""
    host, clock = control()
    sent = clock.now
    clock.now += 0.1
    for _ in range(4):
        host.observe(429, NO_HEADERS, 1.0, sent_at=sent)
    assert host.cap == 4
    clock.now += 0.5
    host.observe(429, NO_HEADERS, 1.0, sent_at=clock.now)  # a request sent after the halving
    assert host.cap == 2


def test_concurrency_never_drops_below_one() -> None:
    """However many 429s arrive, the host keeps one slot."""
    host, clock = control(cap=3)
    for _ in range(6):
        clock.now += 10
        host.observe(429, NO_HEADERS, 0.0, sent_at=clock.now)
    assert host.cap == 1 and host.lowest_cap == 1


def test_successes_climb_back_one_slot_at_a_time_up_to_the_ceiling() -> None:
    """Halved to 1 slot, a window of successes (as many as the slots, at least RECOVER_AFTER) adds one,
    up to per_host_concurrency and never above it."""
    host, clock = control(cap=8)
    for _ in range(3):
        clock.now += 1
        host.observe(429, NO_HEADERS, 0.0, sent_at=clock.now)
    assert host.cap == 1
    climbs = []
    for n in range(1, 200):
        before = host.cap
        host.observe(200, NO_HEADERS, None, sent_at=clock.now)
        if host.cap != before:
            climbs.append((n, host.cap))
    windows = [max(RECOVER_AFTER, cap) for cap in range(1, 8)]
    ends = [sum(windows[: i + 1]) for i in range(7)]
    assert climbs == list(zip(ends, range(2, 9), strict=True))
    assert host.cap == 8 and host.lowest_cap == 1


def test_a_pressure_signal_restarts_the_stretch() -> None:
    """A 503 between successes restarts the count towards the next slot."""
    host, clock = control(cap=8)
    host.observe(503, NO_HEADERS, 0.0, sent_at=clock.now)
    assert host.cap == 4
    for _ in range(3):
        host.observe(200, NO_HEADERS, None, sent_at=clock.now)
    clock.now += 1
    host.observe(503, NO_HEADERS, 0.0, sent_at=clock.now)
    for _ in range(2 - 1):
        host.observe(200, NO_HEADERS, None, sent_at=clock.now)
    assert host.cap == 2


def test_the_pause_leaves_no_lasting_interval() -> None:
    """Once a pause has passed, nothing of it remains: the not-before time is in the past."""
    host, clock = control()
    host.observe(429, NO_HEADERS, 2.0, sent_at=clock.now)
    clock.now += 2.0
    assert host.paused_until <= clock.now


def test_overlapping_pauses_count_once_and_only_their_extension() -> None:
    """A 429 during a pause extends it: one pause, whose length is the union of both."""
    host, clock = control()
    host.observe(429, NO_HEADERS, 2.0, sent_at=clock.now)
    clock.now += 1.0
    host.observe(429, NO_HEADERS, 2.0, sent_at=clock.now)
    assert (host.pauses, host.paused_seconds) == (1, 3.0)
    clock.now += 5.0
    host.observe(429, NO_HEADERS, 1.0, sent_at=clock.now)
    stats = host.stats("h:80")
    assert (stats.pauses, stats.paused_seconds, stats.got_429) == (2, 4.0, 3)


def test_ratelimit_remaining_zero_pauses_until_reset_without_halving() -> None:
    """RateLimit-Remaining: 0 with RateLimit-Reset: 7 pauses the host 7 s and keeps its concurrency."""
    host, clock = control()
    host.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": "7"}, None, sent_at=clock.now)
    assert host.paused_until == clock.now + 7.0
    assert host.cap == 8


def test_ratelimit_with_quota_left_does_not_pause() -> None:
    """A quota that is not used up changes nothing."""
    host, clock = control()
    host.observe(200, {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "7"}, None, sent_at=clock.now)
    assert host.paused_until == 0.0 and host.pauses == 0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"ratelimit-remaining": "0", "ratelimit-reset": "30"}, 30.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000012"}, 12.0),  # a Unix time
        ({"x-rate-limit-remaining": "0", "x-rate-limit-reset": "4"}, 4.0),
        ({"ratelimit": '"default";r=0;t=9'}, 9.0),
        ({"ratelimit": "limit=100, remaining=0, reset=5"}, 5.0),
        ({"ratelimit-remaining": "0"}, None),  # no reset: nothing to wait for
        ({"ratelimit-remaining": "zero", "ratelimit-reset": "5"}, None),
        ({"ratelimit": '"default";r=2;t=9'}, None),
    ],
)
def test_quota_reset_reads_the_common_header_forms(headers: dict[str, str], seconds: float | None) -> None:
    """RateLimit-*, X-RateLimit-*, X-Rate-Limit-* and the structured RateLimit field are understood."""
    assert quota_reset(headers, wall_now=1_700_000_000.0) == seconds


def test_ratelimit_reset_is_capped_by_pause_max() -> None:
    """A quota reset an hour away pauses the host only for the configured cap."""
    host, clock = control(pause_max=60.0)
    host.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": "3600"}, None, sent_at=clock.now)
    assert host.paused_until == clock.now + 60.0


def test_not_modified_answers_are_counted_as_successes() -> None:
    """304s are counted for the report and help the host recover."""
    host, clock = control(cap=2)
    host.observe(429, NO_HEADERS, 0.0, sent_at=clock.now)
    for _ in range(RECOVER_AFTER):
        host.observe(304, NO_HEADERS, None, sent_at=clock.now)
    assert host.not_modified == RECOVER_AFTER
    assert host.cap == 2


def test_a_urls_own_repeated_503_neither_grows_the_backoff_nor_halves_again() -> None:
    """A retry answering 503 again pauses the host for the current backoff, without doubling or halving."""
    host, clock = control(cap=8)
    host.observe(503, NO_HEADERS, None, sent_at=clock.now)
    assert (host.cap, host.paused_until - clock.now) == (4, 0.5)
    clock.now += 2
    host.observe(503, NO_HEADERS, None, sent_at=clock.now, repeat=True)
    assert (host.cap, host.paused_until - clock.now, host.got_503) == (4, 0.5, 2)
    clock.now += 2
    host.observe(429, NO_HEADERS, 3.0, sent_at=clock.now, repeat=True)
    assert host.paused_until - clock.now == 3.0  # a Retry-After is honoured all the same
