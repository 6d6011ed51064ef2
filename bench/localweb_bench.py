"""The check phase on a small hostile local web, with default timeouts; prints figures, asserts nothing.

Models issue 9's report: 8 hosts on loopback, 945 URLs (40 % on one host), every URL a page fetched for
its metadata; a few URLs answer 429 with ``Retry-After: 2`` once, some are slower than the read timeout,
some reset the connection, some always answer 503; some are soft 404s (a "Page not found" title, a
redirect to the front page, or the page one host serves for any unknown URL). Default settings except
``allow_networks`` (default timeouts: a URL slower than ``read_timeout`` costs 3 x 20 s plus backoff).

The server process counts, per host, the most requests in flight at once and every request to a
429-once URL that came before its Retry-After had passed; the checker's verdicts are compared with what
each URL is. Run: ``.venv/bin/python bench/localweb_bench.py [--slow-seconds 25] [--slow-last]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter

from pipeline.check.hosts import HostStats
from pipeline.check import check_links
from pipeline.configfile import parse_settings
from pipeline.models import Observation, Outcome

HOSTS = [f"127.0.0.{60 + i}" for i in range(8)]

_SERVER = r"""
import asyncio, json, socket, sys, time
from aiohttp import web
hosts, slow = json.loads(sys.argv[1]), float(sys.argv[2])
inflight, peak, early, answered_429 = {}, {}, [0], {}
def page(title, filler=""):
    return (f"<html><head><title>{title}</title><meta name=description content='{filler}'></head>"
            f"<body>{filler}</body></html>")
async def handle(request):
    host = request.transport.get_extra_info("sockname")[0]
    path = request.path
    if path == "/__stats":
        return web.json_response({"peak": peak, "early": early[0]})
    inflight[host] = inflight.get(host, 0) + 1
    peak[host] = max(peak.get(host, 0), inflight[host])
    try:
        kind = path.split("/")[1] if path.count("/") > 1 else ""
        html = {"Content-Type": "text/html"}
        if kind == "once429":
            key = (host, path)
            now = time.monotonic()
            if key not in answered_429:
                answered_429[key] = now + 2.0
                return web.Response(status=429, headers={"Retry-After": "2"})
            if now < answered_429[key]:
                early[0] += 1
        if kind == "slow":
            await asyncio.sleep(slow)
        if kind == "reset":
            request.transport.close()
            return web.Response(status=200)
        if kind == "down":
            return web.Response(status=503)
        if kind == "missing":
            return web.Response(text=page("Page not found | Site"), headers=html)
        if kind == "moved":
            return web.Response(status=302, headers={"Location": "/"})
        if kind == "" and path == "/":
            return web.Response(text=page("Front page"), headers=html)
        if kind == "a":
            await asyncio.sleep(0.05)
            return web.Response(text=page(f"Story {path}", path * 3), headers=html)
        # Anything else: host 7 serves its front page for every unknown URL (a soft-404 site).
        if host == hosts[7]:
            return web.Response(text=page("Catch-all site", "welcome"), headers=html)
        return web.Response(status=404, text=page("Not here"), headers=html)
    finally:
        inflight[host] -= 1
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    ports = []
    for host in hosts:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        ports.append(sock.getsockname()[1])
        await web.SockSite(runner, sock, backlog=1024).start()
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

# What each special URL is: kind -> (count on the big host, count on each other host).
_SPECIAL = {
    "once429": (6, 1),
    "slow": (3, 1),
    "reset": (4, 1),
    "down": (4, 1),
    "missing": (3, 1),
    "moved": (3, 1),
}


def _urls(ports: list[int]) -> dict[str, str]:
    """URL -> what it is ("ok", a special kind, or "probe" for host 7's pages that only it can't have)."""
    plan: dict[str, str] = {}
    total, big = 945, 378
    per_other = (total - big) // 7
    for index, (host, port) in enumerate(zip(HOSTS, ports, strict=True)):
        count = big if index == 0 else per_other + (1 if index <= (total - big) % 7 else 0)
        base = f"http://{host}:{port}"
        made = 0
        for kind, (on_big, on_other) in _SPECIAL.items():
            for n in range(on_big if index == 0 else on_other):
                plan[f"{base}/{kind}/{n}"] = kind
                made += 1
        if index == 7:
            for n in range(3):
                plan[f"{base}/deleted/{n}"] = "probe"
                made += 1
        for n in range(count - made):
            # Healthy pages spread through the queue, special ones mixed in among them.
            plan[f"{base}/a/{n}"] = "ok"
    return plan


def _interleave(plan: dict[str, str]) -> list[str]:
    healthy = [u for u, k in plan.items() if k == "ok"]
    special = [u for u, k in plan.items() if k != "ok"]
    step = max(1, len(healthy) // max(1, len(special)))
    out: list[str] = []
    for i, url in enumerate(healthy):
        out.append(url)
        if i % step == 0 and special:
            out.append(special.pop())
    return out + special


async def _check(urls: list[str]) -> tuple[float, dict[str, Outcome], dict[str, str]]:
    settings = parse_settings({"http": {"allow_networks": ["127.0.0.0/8"]}})
    started = time.perf_counter()
    last: dict[str, tuple[float, str]] = {}

    def seen(obs: Observation) -> None:
        last[obs.host] = (time.perf_counter() - started, obs.url)

    stats: dict[str, HostStats] = {}
    found = await check_links(
        urls,
        settings,
        fetch_body=dict.fromkeys(urls, settings.http.max_page_bytes),
        on_result=seen,
        host_stats=stats,
    )
    seconds = time.perf_counter() - started
    for host, (when, url) in sorted(last.items()):
        s = stats[host]
        print(
            f"  {host}: last answer at {when:.1f} s ({url.rsplit(':', 1)[-1]}); 429s {s.got_429}, "
            f"503s {s.got_503}, pauses {s.pauses} ({s.paused_seconds:.1f} s), lowest {s.lowest_concurrency}"
        )
    return seconds, {u: o.outcome for u, o in found.items()}, {u: o.reason for u, o in found.items()}


def main() -> int:
    """Start the web, check it once, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-seconds", type=float, default=25.0)
    parser.add_argument(
        "--slow-last", action="store_true", help="slow URLs at the end of the list (worst case)"
    )
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, json.dumps(HOSTS), str(args.slow_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ports: list[int] = json.loads(server.stdout.readline())
        plan = _urls(ports)
        urls = _interleave(plan)
        if args.slow_last:
            urls = [u for u in urls if plan[u] != "slow"] + [u for u in urls if plan[u] == "slow"]
        seconds, outcomes, reasons = asyncio.run(_check(urls))
        with urllib.request.urlopen(f"http://{HOSTS[0]}:{ports[0]}/__stats", timeout=10) as answer:
            stats = json.loads(answer.read())
        expected_hard = {"missing", "moved", "probe"}
        false_soft = [u for u, k in plan.items() if k == "ok" and outcomes[u] is not Outcome.SUCCESS]
        missed = [u for u, k in plan.items() if k in expected_hard and outcomes[u] is not Outcome.HARD]
        print(
            f"{len(urls)} URLs on {len(HOSTS)} hosts ({sum(1 for k in plan.values() if k == 'ok')} healthy)"
        )
        print(f"  check phase: {seconds:.1f} s")
        print(f"  most in flight per host: {stats['peak']} (per_host_concurrency 8)")
        print(f"  requests before their Retry-After: {stats['early']}")
        print(f"  outcomes: {dict(Counter(o.value for o in outcomes.values()))}")
        print(f"  healthy pages not ok: {len(false_soft)} {[reasons[u] for u in false_soft[:3]]}")
        print(f"  soft 404s not judged hard: {len(missed)} {missed[:3]}")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
