"""End-to-end benchmark of `pipeline refresh` on a generated corpus against local servers; prints figures.

    .venv/bin/python bench/refresh_bench.py [--articles 10000] [--hosts 10] [--latency-ms 20]

It starts one aiohttp server process on ``hosts`` loopback addresses (127.0.0.2, …) that serves article pages
with Open Graph metadata (``/story/N``), PNG images (``/img/N.png``) and 404s (``/gone/N``); writes
``articles`` files modelled on the seed article (an own page, three related items sharing a pool of pages and
images, one dead link in ten articles); then runs ``refresh`` four times in child processes: the first night
(everything due: excerpts filled, sizes corrected), the next two nights (only failing links due; the
second night settles every article the first one wrote, the third is the steady state), and a night a week
later with ``--force``-like freshness (everything due again, nothing new). Prints
wall time, files changed and peak RSS of each (the refresh process alone, and with its child processes at
once: the check's process, the read pool). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

_SERVER = """
import asyncio, io, json, socket, sys
from aiohttp import web
from PIL import Image
hosts, latency = int(sys.argv[1]), float(sys.argv[2])
buffer = io.BytesIO(); Image.new("RGB", (640, 360), (9, 90, 200)).save(buffer, "PNG"); png = buffer.getvalue()
served = 0
async def handle(request):
    global served
    if request.path == "/__served":  # the benchmark asks how many requests the nights made
        return web.Response(text=str(served))
    served += 1
    if latency:
        await asyncio.sleep(latency)
    path = request.path
    if path.startswith("/img/"):
        return web.Response(body=png, content_type="image/png")
    if path.startswith("/gone/"):
        return web.Response(status=404, text="gone")
    html = (f"<html><head><title>Story {path}</title><meta property='og:title' content='Story {path}'>"
            "<meta property='og:description' content='A description of this story, long enough to use.'>"
            f"<meta property='og:image' content='/img{path.replace('/', '-')}.png'>"
            "</head><body>x</body></html>")
    return web.Response(text=html, content_type="text/html")
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    for i in range(hosts):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.0.{i + 2}", 0))
        ports.append(sock.getsockname()[1])
        await web.SockSite(runner, sock, backlog=4096).start()
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

_ARTICLE = """---
category: news
title: "Article {n}"
excerpt: ""
publishedDateTime: 2023-08-09T16:38:00Z
originalUrl: "{own}"
webUrl: "{own}"
type: article
quality: 19
related:
{related}
secured: "1QQjvPvWI8wEE/f+pVWMI4EXn5mjqNqD2bi/ZG7qGDZ66X+xyOdkMsNGlWEZNV0oU/crPoHzyjc40VPqC01FUgzg0KH06zG373t"
---
Body of article {n}.
"""

_RELATED = """  - title: "Related {m}"
    excerpt: "An excerpt the editor wrote for related story {m}."
    webUrl: "{page}"
    type: article
    images:
      - url: "{image}"
        width: 640
        height: {height}
        isCached: true
"""


def _write_corpus(root: Path, articles: int, ports: list[int], dead_every: int = 10) -> None:
    hosts = len(ports)

    def url(index: int, path: str) -> str:
        return f"http://127.0.0.{index % hosts + 2}:{ports[index % hosts]}{path}"

    pool = max(articles // 5, 1)
    for n in range(articles):
        related = []
        for k in range(3):
            m = (n * 3 + k) % pool
            page = (
                url(m, f"/gone/{m}")
                if (dead_every and n % dead_every == 0 and k == 0)
                else url(m, f"/story/r{m}")
            )
            related.append(
                _RELATED.format(m=m, page=page, image=url(m + 1, f"/img/r{m}.png"), height=360 - (m % 2))
            )
        text = _ARTICLE.format(n=n, own=url(n, f"/story/a{n}"), related="".join(related))
        (root / f"{n:06d}.md").write_text(text, encoding="utf-8")


# Always: the resident memory of the refresh process and of its child processes (the check's process, the
# read pool's workers) together, sampled every 50 ms; its peak is what the machine must have.
_TREE = """
import os, resource, threading, time
def _tree_mb():
    total, pids = 0, [os.getpid()]
    while pids:
        pid = pids.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1])
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    pids += [int(child) for child in fh.read().split()]
        except OSError:  # the process ended meanwhile
            pass
    return total * resource.getpagesize() / 2**20
_tree = [0.0]
def _sample():
    while True:
        _tree[0] = max(_tree[0], _tree_mb())
        time.sleep(0.05)
threading.Thread(target=_sample, daemon=True).start()
def _tree_peak():
    return max(_tree[0], _tree_mb())
"""

# With --profile: each stage of the run is wrapped to print, on standard error, the resident memory after
# it (now and the peak so far), so the stage that holds the memory is named by measurement.
_PROFILE = """
import functools, resource, sys
import pipeline.runner as runner_module
from pipeline.health.history import HistoryStore
_STAGES = (
    (runner_module, "_read", "read pass"), (runner_module, "_plan", "plan"),
    (runner_module, "check_pass", "check pass"), (runner_module, "probe_images", "image probes"),
    (runner_module, "_write", "write pass"), (runner_module.build, "build_report", "build report"),
    (HistoryStore, "finish_run", "finish_run"), (runner_module.report, "write_reports", "report files"),
)
def _wrap(owner, name, label, after):
    inner = getattr(owner, name)
    @functools.wraps(inner)
    def wrapped(*args, **kwargs):
        result = inner(*args, **kwargs)
        after(label)
        return result
    setattr(owner, name, wrapped)
def _rss(label):
    with open("/proc/self/statm") as fh:
        now = int(fh.read().split()[1]) * resource.getpagesize() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"    after {label:14} RSS {now:7.0f} MB  peak {peak:7.0f} MB  with children {_tree_mb():7.0f} MB",
          file=sys.stderr)
for owner, name, label in _STAGES:
    _wrap(owner, name, label, _rss)
"""

# With --trace: tracemalloc as well, and after each stage (the report files aside) the allocation sites
# holding the most memory (slow: for finding what holds the memory, not for timing).
_TRACE = """
import tracemalloc
tracemalloc.start(1)
def _top(label):
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    print(f"    after {label:14} traced {total / 2**20:7.1f} MB", file=sys.stderr)
    for stat in stats[:12]:
        frame = stat.traceback[0]
        where = frame.filename.split("/site-packages/")[-1].split("/pipeline/")[-1]
        size = stat.size / 2**20
        print(f"      {size:7.1f} MB {stat.count:9d} blocks  {where}:{frame.lineno}", file=sys.stderr)
for owner, name, label in _STAGES[:-1]:
    _wrap(owner, name, label, _top)
"""


def _night(
    corpus: Path,
    work: Path,
    day: float,
    extra: dict[str, object],
    profile: bool = False,
    trace: bool = False,
) -> dict[str, object]:
    """One refresh in a child process (for a clean peak RSS); returns its figures."""
    code = (
        _TREE
        + (_PROFILE if profile or trace else "")
        + (_TRACE if trace else "")
        + f"""
import io, json, resource, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from pipeline.configfile import parse_settings
from pipeline.models import RunOptions
from pipeline.runner import refresh
settings = parse_settings({{
    "corpus": {{"roots": [{str(corpus)!r}]}},
    "http": {{"allow_networks": ["127.0.0.0/8"]}},
    "state": {{"dir": {str(work / "state")!r}}},
    "reports": {{"dir": {str(work / "reports")!r}}},
    **{extra!r},
}})
now = datetime(2026, 11, 1, 3, tzinfo=UTC) + timedelta(days={day})
started, cpu = time.perf_counter(), time.process_time()
outcome = refresh(settings, RunOptions(now=lambda: now, show_progress=False), io.StringIO())
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
totals = outcome.report.totals.to_json()
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu,
                  "changes": totals["changes"], "urls": totals["urls"],
                  "dead": totals["dead"], "failing": totals["failing"], "checked": totals["checked"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "tree_rss_mb": _tree_peak(),
                  "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    )
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"the night failed:\n{result.stderr}")
    figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - began  # start-up and imports included
    if profile or trace:
        shown = [line for line in result.stderr.splitlines() if "after " in line or " MB " in line]
        sys.stdout.write("".join(line + "\n" for line in shown))
    return figures


def _served(port: int) -> int:
    """How many requests the server has answered so far (all hosts)."""
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/__served", timeout=10) as answer:
        return int(answer.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--warm",
        action="store_true",
        help="cold night, the night that settles what it wrote, then a warm night (no URL due, no file"
        " changed, no dead link in the corpus); prints the warm night's cost against the cold one",
    )
    parser.add_argument("--profile", action="store_true", help="print RSS after each stage of each night")
    parser.add_argument(
        "--trace", action="store_true", help="with tracemalloc: the allocation sites after each stage (slow)"
    )
    parser.add_argument("--processes", type=int, default=0, help="corpus.read_processes (0: one per core)")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(args.hosts), str(args.latency_ms / 1000)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            corpus = work / "corpus"
            corpus.mkdir()
            started = time.perf_counter()
            _write_corpus(corpus, args.articles, ports, dead_every=0 if args.warm else 10)
            print(
                f"{args.articles} articles written in {time.perf_counter() - started:.1f} s; "
                f"{args.hosts} hosts, {args.latency_ms:g} ms latency, default politeness (8 per host)"
            )
            base: dict[str, object] = {
                # Never the real archive from a benchmark: nothing here may leave loopback.
                "health": {"hard": {"runs": 1, "days": 0}, "archive": {"enabled": False}},
                "corpus": {"roots": [str(corpus)], "read_processes": args.processes},
            }
            # Hours apart within one day: no ok verdict is due again, so nights 2 and 3 recheck nothing
            # but the baseline hosts.
            nights = (
                (("night 1 (cold, all due)", 0), ("night 2 (settles)", 1 / 24), ("night 3 (warm)", 2 / 24))
                if args.warm
                else (
                    ("night 1 (all due)", 0),
                    ("night 2 (failing only)", 1),
                    ("night 3 (failing only)", 2),
                    ("night 9 (all due again)", 8),
                )
            )
            rows = []
            for label, day in nights:
                before = _served(ports[0])
                figures = _night(corpus, work, day, base, args.profile, args.trace)
                figures["requests"] = _served(ports[0]) - before
                rows.append(figures)
                print(
                    f"  {label:24} {figures['seconds']:6.1f} s ({figures['process_seconds']:.1f} s with"
                    f" start-up, CPU {figures['cpu_seconds']:.1f} s)  {figures['requests']} requests  "
                    f"{figures['urls']} URLs  {figures['changes']} changes  {figures['dead']} dead  "
                    f"peak RSS {figures['rss_mb']:.0f} MB, {figures['tree_rss_mb']:.0f} MB with its child processes"
                    f" at once (largest child {figures['children_rss_mb']:.0f} MB)"
                )
            if args.warm:
                cold, warm = rows[0], rows[-1]
                print(
                    f"  warm vs cold: {cold['seconds'] / warm['seconds']:.1f}x cheaper in time "  # type: ignore[operator]
                    f"(CPU {cold['cpu_seconds'] / warm['cpu_seconds']:.1f}x), "  # type: ignore[operator]
                    f"{cold['requests'] / max(warm['requests'], 1):.0f}x in requests; "  # type: ignore[operator]
                    f"peak RSS {cold['rss_mb'] / args.articles * 1024:.1f} KiB per article (cold)"  # type: ignore[operator]
                )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
