"""A user editing articles as fast as possible, in another process: appends, in-place writes, rename saves.

Run as ``python edit_hammer.py FOLDER SECONDS PAUSE NAME...``; it edits the named files in FOLDER until
SECONDS have passed (or SIGTERM), waiting a random 0..PAUSE seconds between edits, then prints one line
per finished edit: ``name token``. An edit is finished when
the program's close (or rename) returned, so every printed token must still be in the file at the end.
:func:`race` runs it against ``write_atomic`` (used by the lost-edit test and ``bench/lost_edits_bench.py``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import WriteConflict
from pipeline.frontmatter.document import write_atomic


def _append(path: Path, token: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(token)


def _in_place(path: Path, token: bytes) -> None:
    with path.open("r+b") as handle:
        data = handle.read()
        handle.seek(0)
        handle.write(data + token)
        handle.truncate()


def _rename_save(path: Path, token: bytes) -> None:
    data = path.read_bytes()
    swap = path.with_name(f"{path.name}.swp~")  # an editor's own temporary name, not ours
    swap.write_bytes(data + token)
    os.replace(swap, path)


def main() -> None:
    folder, seconds, pause, names = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    edits = (_append, _in_place, _rename_save)
    done: list[str] = []
    deadline = time.monotonic() + seconds
    count = 0
    while not stop and time.monotonic() < deadline:
        name = random.choice(names)
        token = f"\nU{os.getpid()}-{count}"
        count += 1
        random.choice(edits)(folder / name, token.encode())
        done.append(f"{name} {token.strip()}")
        time.sleep(random.random() * pause)  # a person's edits are apart; two within microseconds are not
    sys.stdout.write("".join(line + "\n" for line in done))


@dataclass(frozen=True)
class RaceResult:
    """What a race between the hammer and ``write_atomic`` left."""

    edits: int  # edits the hammer finished
    lost: list[str]  # finished edits found neither in the files nor in a conflict copy at the end
    copies: int  # conflict copies: an edit of the file we had just put in place, kept beside it
    written: int  # write_atomic calls that replaced a file
    conflicts: int  # write_atomic calls refused because the file changed


def race(folder: Path, files: int, seconds: float, pause: float) -> RaceResult:
    """Edit ``files`` articles from another process while this one rewrites them in a loop."""
    names = [f"a{i}.md" for i in range(files)]
    for name in names:
        (folder / name).write_bytes(b"---\ntitle: x\n---\nbody")
    log = (folder / ".hammer.log").open("w+")  # a file, not a pipe: a full pipe would stall the hammer
    hammer = subprocess.Popen(
        [sys.executable, __file__, str(folder), str(seconds), str(pause), *names], stdout=log
    )
    written = conflicts = rounds = 0
    while hammer.poll() is None:
        rounds += 1
        for name in names:
            path = folder / name
            old = path.read_bytes()
            try:
                write_atomic(path, old + f"\nP{rounds}".encode(), old, [folder])
                written += 1
            except WriteConflict:
                conflicts += 1
    hammer.wait()
    log.seek(0)
    finished = [line.split() for line in log.read().splitlines()]
    log.close()
    copies = {name: [p.read_bytes() for p in folder.glob(f"{name}.conflict-*")] for name in names}
    kept = {name: [(folder / name).read_bytes(), *copies[name]] for name in names}
    lost = [
        f"{name} {token}"
        for name, token in finished
        if not any(f"\n{token}\n".encode() in text + b"\n" for text in kept[name])
    ]
    return RaceResult(len(finished), lost, sum(map(len, copies.values())), written, conflicts)


if __name__ == "__main__":
    main()
