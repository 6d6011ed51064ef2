"""The host queue under its controller: slots follow the adaptive concurrency, pauses hold the whole host."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from pipeline.check.hosts import RECOVER_AFTER, HostControl
from pipeline.check.queue import Host, HostQueue


def queue(urls: int, cap: int) -> tuple[HostQueue, Host]:
    pending = deque(f"http://h.test/{i}" for i in range(urls))
    host = Host("h.test:80", pending, HostControl(cap, 60.0), 0.0)
    return HostQueue({host.key: host}), host


async def _blocked(waiting: asyncio.Future[object]) -> bool:
    for _ in range(20):  # plenty of loop turns for a ready take() to finish
        await asyncio.sleep(0)
    return not waiting.done()


def test_no_more_than_the_current_concurrency_is_handed_out() -> None:
    """With 2 slots, a third take() waits until one of the two requests is done."""

    async def scenario() -> None:
        q, host = queue(5, cap=2)
        await q.take()
        await q.take()
        third = asyncio.ensure_future(q.take())
        assert await _blocked(third)
        q.done(host)
        assert await asyncio.wait_for(third, 1) is not None

    asyncio.run(scenario())


def test_halved_host_waits_for_its_requests_to_drain_below_the_new_cap() -> None:
    """A 429 that halves 4 slots to 2 while 4 are in flight lets the next start only when 1 is left."""

    async def scenario() -> None:
        q, host = queue(8, cap=4)
        for _ in range(4):
            await q.take()
        host.control.observe(429, {}, 0.0, sent_at=time.monotonic())
        assert host.cap == 2
        q.done(host)
        q.done(host)
        fifth = asyncio.ensure_future(q.take())
        assert await _blocked(fifth)
        q.done(host)
        assert await asyncio.wait_for(fifth, 1) is not None

    asyncio.run(scenario())


def test_paused_host_hands_out_nothing_until_the_pause_ends() -> None:
    """A host paused for 0.2 s starts its next request no sooner, then goes on without a lasting interval."""

    async def scenario() -> None:
        q, host = queue(3, cap=2)
        host.control.observe(429, {}, 0.2, sent_at=time.monotonic())
        started = time.monotonic()
        await q.take()
        assert time.monotonic() - started >= 0.2
        q.done(host)  # one slot after the halving: free it
        resumed = time.monotonic()
        await asyncio.wait_for(q.take(), 1)
        assert time.monotonic() - resumed < 0.1

    asyncio.run(scenario())


def test_recovered_host_hands_out_more_at_once() -> None:
    """Once successes climb a halved host back to 2 slots, two requests are in flight at once again."""

    async def scenario() -> None:
        q, host = queue(4, cap=2)
        host.control.observe(503, {}, 0.0, sent_at=time.monotonic())
        await q.take()
        second = asyncio.ensure_future(q.take())
        assert await _blocked(second)
        for _ in range(RECOVER_AFTER):
            host.control.observe(200, {}, None, sent_at=time.monotonic())
        q.done(host)  # a request ended: the queue looks at the host again
        await asyncio.wait_for(second, 1)
        assert await asyncio.wait_for(q.take(), 1) is not None
        assert host.inflight == 2

    asyncio.run(scenario())


def test_stalled_request_does_not_hold_a_halved_host_but_the_ceiling_holds() -> None:
    """A halved host whose request stalls starts the next one; stalled or not, never more than the ceiling."""

    async def scenario() -> None:
        q, host = queue(6, cap=2)
        host.control.observe(503, {}, 0.0, sent_at=time.monotonic())
        await q.take()
        second = asyncio.ensure_future(q.take())
        assert await _blocked(second)
        q.stall(host, True)  # the first has gone STALL_AFTER without an answer
        await asyncio.wait_for(second, 1)
        q.stall(host, True)
        third = asyncio.ensure_future(q.take())
        assert await _blocked(third)  # two in flight: the configured ceiling
        assert host.inflight == 2

    asyncio.run(scenario())


def test_a_queued_url_is_parsed_when_taken() -> None:
    """Untried URLs wait as their text; take() hands out the parsed URL with it."""

    async def scenario() -> None:
        q, host = queue(1, cap=1)
        q.add(host, "http://h.test/late")
        assert list(host.pending) == ["http://h.test/0", "http://h.test/late"]
        taken = await q.take()
        assert taken is not None and taken[1] == "http://h.test/0"
        assert str(taken[2]) == "http://h.test/0" and taken[2].host == "h.test"

    asyncio.run(scenario())
