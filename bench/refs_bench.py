"""Cost of field line numbers in the read pass: extract_refs with and without ``Document.line_of``.

Parses the seed article once per sample and times ``extract_refs`` both ways (alternating, so machine
noise hits both alike), printing the median per article and the share of a whole read + parse.
Run: ``.venv/bin/python bench/refs_bench.py [--samples 5000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from pipeline.config import Settings
from pipeline.frontmatter.document import parse
from pipeline.links import extract_refs

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_132ac3e31a9df9d5.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=5000)
    args = parser.parse_args()
    raw = SEED.read_bytes()
    links = Settings().links
    plain: list[float] = []
    lined: list[float] = []
    parses: list[float] = []
    for _ in range(args.samples):
        start = time.perf_counter()
        doc = parse(raw)
        parses.append(time.perf_counter() - start)
        start = time.perf_counter()
        extract_refs(SEED, doc.data, links)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        refs = extract_refs(SEED, doc.data, links, doc.line_of)
        lined.append(time.perf_counter() - start)
    extra = statistics.median(lined) - statistics.median(plain)
    print(f"{len(refs)} refs per article; parse {statistics.median(parses) * 1e6:.0f} µs (median)")
    print(
        f"extract_refs without lines {statistics.median(plain) * 1e6:.1f} µs, with lines "
        f"{statistics.median(lined) * 1e6:.1f} µs: +{extra * 1e6:.1f} µs per article "
        f"({extra / statistics.median(parses) * 100:.1f} % of a parse)"
    )


if __name__ == "__main__":
    main()
