"""End-to-end benchmark of `pipeline refresh` on a generated corpus against local servers; prints figures.

    .venv/bin/python bench/refresh_bench.py [--articles 10000] [--hosts 10] [--latency-ms 20]

It starts one aiohttp server process on ``hosts`` loopback addresses (127.0.0.2, …) that serves article pages
with Open Graph metadata (``/story/N``), PNG images (``/img/N.png``) and 404s (``/gone/N``); writes
``articles`` files modelled on the seed article (an own page, three related items sharing a pool of pages and
images, one dead link in ten articles); then runs ``refresh`` four times in child processes: the first night
(everything due: excerpts filled, sizes corrected), the next two nights (only failing links due; the
second night settles every article the first one wrote, the third is the steady state), and a night a week
later with ``--force``-like freshness (everything due again, nothing new). Prints
wall time, files changed and peak RSS of each. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SERVER = """
import asyncio, io, json, socket, sys
from aiohttp import web
from PIL import Image
hosts, latency = int(sys.argv[1]), float(sys.argv[2])
buffer = io.BytesIO(); Image.new("RGB", (640, 360), (9, 90, 200)).save(buffer, "PNG"); png = buffer.getvalue()
async def handle(request):
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


def _write_corpus(root: Path, articles: int, ports: list[int]) -> None:
    hosts = len(ports)

    def url(index: int, path: str) -> str:
        return f"http://127.0.0.{index % hosts + 2}:{ports[index % hosts]}{path}"

    pool = max(articles // 5, 1)
    for n in range(articles):
        related = []
        for k in range(3):
            m = (n * 3 + k) % pool
            page = url(m, f"/gone/{m}") if (n % 10 == 0 and k == 0) else url(m, f"/story/r{m}")
            related.append(
                _RELATED.format(m=m, page=page, image=url(m + 1, f"/img/r{m}.png"), height=360 - (m % 2))
            )
        text = _ARTICLE.format(n=n, own=url(n, f"/story/a{n}"), related="".join(related))
        (root / f"{n:06d}.md").write_text(text, encoding="utf-8")


def _night(corpus: Path, work: Path, day: int, extra: dict[str, object]) -> dict[str, object]:
    """One refresh in a child process (for a clean peak RSS); returns its figures."""
    code = f"""
import io, json, resource, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from pipeline.config import parse_settings
from pipeline.runner import RunOptions, refresh
settings = parse_settings({{
    "corpus": {{"roots": [{str(corpus)!r}]}},
    "http": {{"allow_networks": ["127.0.0.0/8"]}},
    "state": {{"dir": {str(work / "state")!r}}},
    "reports": {{"dir": {str(work / "reports")!r}}},
    **{json.dumps(extra)},
}})
now = datetime(2026, 11, 1, 3, tzinfo=UTC) + timedelta(days={day})
started = time.perf_counter()
outcome = refresh(settings, RunOptions(now=lambda: now, show_progress=False), io.StringIO())
seconds = time.perf_counter() - started
totals = outcome.report["totals"]
print(json.dumps({{"seconds": seconds, "changes": totals["changes"], "urls": totals["urls"],
                  "dead": totals["dead"], "failing": totals["failing"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20.0)
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
            _write_corpus(corpus, args.articles, ports)
            print(
                f"{args.articles} articles written in {time.perf_counter() - started:.1f} s; "
                f"{args.hosts} hosts, {args.latency_ms:g} ms latency, default politeness (8 per host)"
            )
            hard = {"health": {"hard": {"runs": 1, "days": 0}}}
            for label, day, extra in (
                ("night 1 (all due)", 0, hard),
                ("night 2 (failing only)", 1, hard),
                ("night 3 (failing only)", 2, hard),
                ("night 9 (all due again)", 8, hard),
            ):
                figures = _night(corpus, work, day, extra)
                print(
                    f"  {label:24} {figures['seconds']:6.1f} s  {figures['urls']} URLs  "
                    f"{figures['changes']} changes  {figures['dead']} dead  "
                    f"peak RSS {figures['rss_mb']:.0f} MB"
                )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
