"""The read pass alone, in one process and in the pool, on a generated corpus; prints figures.

    .venv/bin/python bench/readpass_bench.py [--articles 10000] [--kind seed|tiny] [--repeat 3]

``seed``: articles modelled on the seed (as ``refresh_bench.py`` writes them: own page, three related items
with images); ``tiny``: one URL per article (as ``pipeline bench --check-only`` writes them). Each repeat
reads the corpus with ``corpus.read_processes: 1`` and then with ``0`` (one process per core), without a
history (every file parsed). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import refresh_bench

from pipeline.configfile import parse_settings
from pipeline.readpass import collect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--kind", choices=("seed", "tiny"), default="seed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.kind == "seed":
            refresh_bench._write_corpus(root, args.articles, [1, 2, 3, 4])
        else:
            for n in range(args.articles):
                text = f'---\ntitle: "Article {n}"\nampWebUrl: "http://127.0.0.2:1/page/{n}"\n---\nBody\n'
                (root / f"{n:06d}.md").write_text(text)
        times: dict[int, list[float]] = {1: [], 0: []}
        for _ in range(args.repeat):
            for processes in times:
                settings = parse_settings({"corpus": {"roots": [str(root)], "read_processes": processes}})
                started = time.perf_counter()
                collect(settings)
                times[processes].append(time.perf_counter() - started)
    for processes, seconds in times.items():
        label = "one process" if processes == 1 else "pool (one per core)"
        runs = " / ".join(f"{s:.2f}" for s in seconds)
        median = statistics.median(seconds)
        print(f"{args.articles} {args.kind} articles, {label}: {runs} s (median {median:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
