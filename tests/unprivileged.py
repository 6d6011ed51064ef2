"""Running a test step as an unprivileged user: tests run as root, whom file permissions do not bind."""

from __future__ import annotations

import os
from collections.abc import Callable


def run_unprivileged(task: Callable[[], str]) -> str:
    """Run ``task`` in a forked child as `nobody` when we are root (permissions do not bind root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(write_end, task().encode())
        except BaseException as exc:
            os.write(write_end, f"child failed: {exc!r}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        output = pipe.read()
    os.waitpid(pid, 0)
    return output
