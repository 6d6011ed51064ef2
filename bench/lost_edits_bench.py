"""Lost edits: a process edits articles as fast as it can while write_atomic rewrites them in a loop.

For each way of replacing a file (``lease``: exchange under a read lease, the default on Linux;
``exchange``: renameat2 exchange without a lease; ``replace``: the portable compare + os.replace), runs
the editor of ``tests/edit_hammer.py`` (appends, in-place writes, rename saves, a random 0..PAUSE s apart)
against our writes for SECONDS, REPEAT times, and prints the finished edits, the edits lost (in neither
the file nor a conflict copy), the conflict copies, and our writes and refused writes.
Run: ``.venv/bin/python bench/lost_edits_bench.py [--seconds 5] [--repeat 3] [--pause 0.001]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edit_hammer import race  # noqa: E402

from pipeline.frontmatter.replace import _replace

_REAL = (_replace._take_lease, _replace._RENAMEAT2)


def _mode(name: str) -> None:
    take_lease, renameat2 = _REAL
    _replace._take_lease = take_lease if name == "lease" else lambda fd: False  # type: ignore[assignment]
    _replace._RENAMEAT2 = None if name == "replace" else renameat2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.001)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--modes", default="lease,exchange,replace")
    args = parser.parse_args()
    print(f"{args.files} files, {args.seconds:g} s per run, editor pause 0..{args.pause:g} s")
    for mode in args.modes.split(","):
        _mode(mode)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                r = race(Path(folder), args.files, args.seconds, args.pause)
            share = 100 * len(r.lost) / max(r.edits, 1)
            print(
                f"{mode:9} edits {r.edits:6}  lost {len(r.lost):4} ({share:.2f} %)  copies {r.copies:3}  "
                f"written {r.written:5}  refused {r.conflicts:5}"
            )


if __name__ == "__main__":
    main()
