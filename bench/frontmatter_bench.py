"""Front-matter speed: discover + read + parse of N copies of the seed, and edit (apply + verify) per file.

Writes N copies of the seed article (title varied) into a temporary folder, then prints:
the wall time to discover, read and parse all of them; the median per-file parse time; the median
per-file time of ``apply`` for a few typical edit sets (each includes its re-parse verification);
the median ``write_atomic`` time; and the parse time of an article with a 20 MB body.
Run: ``.venv/bin/python bench/frontmatter_bench.py [--files 10000] [--edits 1000]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.corpus import discover, read_article
from pipeline.frontmatter.document import apply, parse, write_atomic
from pipeline.models import Append
from pipeline.models import Edit
from pipeline.models import Remove
from pipeline.models import SetValue

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_132ac3e31a9df9d5.txt"
EDIT_SETS: dict[str, list[Edit]] = {
    "one scalar (width)": [SetValue(("related", 1, "images", 0, "width"), 1300)],
    "excerpt + width + linkHealth block": [
        SetValue(("excerpt",), "A refreshed excerpt."),
        SetValue(("related", 1, "images", 0, "width"), 1300),
        SetValue(("linkHealth",), {"dead": [{"field": "webUrl", "url": "https://x", "status": 404}]}),
    ],
    "append image + remove key": [
        Append(("related", 0, "images"), {"url": "https://img.example/a.jpg", "width": 10, "height": 10}),
        Remove(("related", 2, "images", 0, "isCached")),
    ],
}


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=1_000, help="files edited per edit set")
    args = parser.parse_args()
    seed = SEED.read_bytes()
    print(f"seed: {len(seed)} bytes, front-matter {len(parse(seed).text)} characters")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i in range(args.files):
            sub = root / f"d{i % 100:02d}"
            sub.mkdir(exist_ok=True)
            (sub / f"{i:05d}.txt").write_bytes(seed.replace(b"China Drafts", f"Copy {i} of".encode(), 1))

        started = time.perf_counter()
        paths = [p for p in discover([root], ["*.txt"]) if isinstance(p, Path)]
        discovered = time.perf_counter()
        parse_times = []
        articles = []
        for path in paths:
            begin = time.perf_counter()
            articles.append(read_article(path, 50 << 20))
            parse_times.append(time.perf_counter() - begin)
        finished = time.perf_counter()
        print(
            f"{len(paths)} files: discover {discovered - started:.2f} s, "
            f"discover+read+parse {finished - started:.2f} s total; "
            f"read+parse median {median_ms(parse_times)} per file"
        )

        for name, edits in EDIT_SETS.items():
            times = []
            for article in articles[: args.edits]:
                begin = time.perf_counter()
                apply(article.doc, edits)
                times.append(time.perf_counter() - begin)
            print(f"apply + verify [{name}]: median {median_ms(times)} per file over {len(times)} files")

        write_times = []
        for article in articles[: args.edits]:
            new = apply(article.doc, EDIT_SETS["one scalar (width)"])
            begin = time.perf_counter()
            write_atomic(article.path, new, article.doc.raw, [root])
            write_times.append(time.perf_counter() - begin)
        print(f"write_atomic (with fsync): median {median_ms(write_times)} per file")

    big = seed + b"body line\n" * (2 << 20)
    begin = time.perf_counter()
    parse(big)
    print(f"parse with a {len(big) / 1e6:.0f} MB body: {(time.perf_counter() - begin) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
