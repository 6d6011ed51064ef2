"""Extraction speed on saved real pages: pages/s of ``pipeline.extract.html.scrape`` in one process.

Reads every page listed in a pages.json (default ``/work/shared/corpora/pages.json``), scrapes them all
``--repeat`` times and prints the median and best pages/s and MB/s. Run:
``.venv/bin/python bench/extract_bench.py [PAGES_JSON] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from pipeline.extract.html import scrape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages_json", nargs="?", type=Path, default=Path("/work/shared/corpora/pages.json"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--cap", type=int, default=1024 * 1024, help="bytes per page, as the fetcher caps them"
    )
    args = parser.parse_args()
    listed = json.loads(args.pages_json.read_text(encoding="utf-8"))
    pages = [
        ((args.pages_json.parent / page["file"]).read_bytes()[: args.cap], page.get("url") or "")
        for page in listed
    ]
    total_bytes = sum(len(body) for body, _ in pages)
    for body, url in pages:  # warm-up: imports, regex compilation, caches
        scrape(body, url)
    rates = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for body, url in pages:
            scrape(body, url, {"content-type": "text/html"})
        rates.append(len(pages) / (time.perf_counter() - start))
    median = statistics.median(rates)
    print(f"pages: {len(pages)}  bytes: {total_bytes / 1e6:.1f} MB (capped at {args.cap} bytes per page)")
    print(f"repeats: {args.repeat}  median: {median:,.0f} pages/s  best: {max(rates):,.0f} pages/s")
    print(f"median throughput: {median * total_bytes / len(pages) / 1e6:,.1f} MB/s")


if __name__ == "__main__":
    main()
