"""Sum py-spy's collapsed stacks (``py-spy record --format raw``): a script that prints, not a test.

    .venv/bin/python bench/profile_summary.py FILE... [--top 30] [--under FUNCTION] [--self]

Prints the functions (name and file, lines merged) with the most samples in which they are on the stack
(inclusive) or at its top (``--self``), as seconds at ``--rate`` samples a second and as a share of all
samples kept; ``--under`` keeps only stacks through that function (``check_pass``, ``_Recorder.flush`` …).
Used on the files ``bench/worker_bench.py --profile`` writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^()]*?):\d+\)$")


def _frame(text: str) -> str:
    """A frame without its line number: ``name (file)``."""
    return _LINE.sub(lambda m: f" ({m.group(1)})", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--under", default="", help="keep only stacks with a frame containing this text")
    parser.add_argument("--self", dest="own", action="store_true", help="rank by samples at the stack's top")
    parser.add_argument("--rate", type=float, default=200.0, help="the samples a second py-spy took")
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    total = 0
    for path in args.files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if not stack or not number.isdigit():
                continue
            frames = [_frame(frame) for frame in stack.split(";")]
            if args.under and not any(args.under in frame for frame in frames):
                continue
            samples = int(number)
            total += samples
            for frame in [frames[-1]] if args.own else set(frames):
                counts[frame] += samples
    where = f" under {args.under}" if args.under else ""
    print(f"{total} samples ({total / args.rate:.1f} s at {args.rate:g}/s){where}")
    for frame, samples in counts.most_common(args.top):
        print(f"{samples / args.rate:8.2f} s {100 * samples / max(total, 1):5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
