"""The run lock: one run at a time across real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import LockHeld
from pipeline.lock import run_lock

_HOLDER = """
import sys
from pathlib import Path
from pipeline.lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A second process that holds the lock until its stdin gets a line."""
    lock_file = tmp_path / "state" / "pipeline.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    with proc:
        yield proc, lock_file
        if proc.poll() is None:
            proc.kill()


def test_second_process_is_refused_with_holder_pid(holder: tuple[subprocess.Popen[str], Path]) -> None:
    """While another process holds the lock, run_lock raises LockHeld naming the file and the holder's pid."""
    proc, lock_file = holder

    with pytest.raises(LockHeld) as info, run_lock(lock_file):
        pass

    assert info.value.pid == proc.pid
    assert str(lock_file) in str(info.value)
    assert str(proc.pid) in str(info.value)


def test_lock_is_free_after_holder_releases(holder: tuple[subprocess.Popen[str], Path]) -> None:
    """Once the holder leaves its block, another process can take the lock."""
    proc, lock_file = holder
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"

    with run_lock(lock_file):
        assert lock_file.read_text().strip() == str(os.getpid())


def test_lock_is_released_when_holder_is_killed(holder: tuple[subprocess.Popen[str], Path]) -> None:
    """A holder killed by SIGKILL leaves no stale lock behind."""
    proc, lock_file = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=5)

    with run_lock(lock_file):
        pass


def test_lock_file_is_cleared_after_release(tmp_path: Path) -> None:
    """After a run, the lock file names no holder (it stays, empty, so its inode is shared)."""
    lock_file = tmp_path / "pipeline.lock"
    with run_lock(lock_file):
        assert lock_file.read_text().strip() == str(os.getpid())

    assert lock_file.exists()
    assert lock_file.read_text() == ""


def test_nested_acquire_in_same_process_is_refused(tmp_path: Path) -> None:
    """A second run_lock on the same file conflicts even inside one process (flock is per open file)."""
    lock_file = tmp_path / "pipeline.lock"
    with run_lock(lock_file), pytest.raises(LockHeld), run_lock(lock_file):
        pass
