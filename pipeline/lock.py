"""One run at a time, across processes: an exclusive, non-blocking lock on a file in the state folder.

Reads: the lock file path (``settings.state.lock_file``). Returns: a context manager; raises ``LockHeld``
when another process (the daemon, cron, a person at a terminal) holds the lock, and ``PathUnusable`` when
the lock file or its folder cannot be created or opened (permissions).

``fcntl.flock`` rather than ``filelock``: the kernel drops the lock when the holder dies (even by SIGKILL),
and we need to write the holder's pid into the file for the second process's message, which ``filelock``
would truncate when it opens the file. The file itself is never removed: unlinking a lock file lets two
processes hold locks on two different inodes.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import LockHeld, PathUnusable

_REMEDY = "make it writable by the user running the pipeline, or point state.dir (--state-dir) elsewhere"


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 64, 0)
    except OSError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive run lock on ``path`` for the block; raise ``LockHeld`` at once if it is taken."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        where = Path(exc.filename) if isinstance(exc.filename, str) else path
        raise PathUnusable(where, f"cannot create the run lock: {exc.strerror or exc}", _REMEDY) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(path, _read_pid(fd)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            # Clear the pid first so that nobody reads a stale holder once we let go.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
