"""Replace one file's bytes atomically, but only if nobody changed them since they were read.

Reads: the resolved path of an article, the bytes the caller read from it, and the new bytes. Returns
nothing; raises ``WriteConflict`` when the file changed (the user's bytes stay in place) and
``FrontMatterError`` when it cannot be written. Settings: none. Also owns the temporary-file name pattern,
so leftovers of a killed run can be found by exactly that pattern (:func:`is_leftover`).

The last comparison and the replace cannot be one step with ``os.replace``: an edit landing between them
would be overwritten. So, strongest guarantee first:

1. **Exchange under a lease** (Linux, the file's owner, a file system with leases): a read lease on the
   original file (``F_SETLEASE``) makes the kernel tell us when anyone opens it for writing or truncates it,
   and refuses it while anyone has it open for writing; ``renameat2(RENAME_EXCHANGE)`` swaps the new file in
   and hands back the file that was there. If what came back is not the inode we read, if its bytes differ,
   or if the lease was broken, we swap back: the user's file is in place again, unchanged, and the run
   reports a conflict. An edit by a program that opens the file (appends, in-place writes, truncation) or
   replaces it (an editor's rename save) is never lost.
2. **Exchange without a lease** (not the owner, or leases unsupported): the same swap and checks, so a
   save by rename or any write finished before the swap is never lost; a program that already had the file
   open and writes into it after the swap's check writes into the old file, which is removed.
3. **Plain replace** (no ``renameat2`` or no ``RENAME_EXCHANGE`` on this file system or kernel): the bytes
   are compared just before ``os.replace``; an edit landing in the microseconds between them is lost.

Every path writes a temporary file beside the original (same mode, owner and extended attributes), fsyncs
it, swaps or replaces, and fsyncs the folder, so a crash leaves the article old or new.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.errors import FrontMatterError, WriteConflict

__all__ = ["is_leftover", "kind_of", "open_regular", "remove_leftovers", "replace_if_unchanged"]

_SUFFIX = ".tmp"
# mkstemp's name: prefix + 8 characters from tempfile's alphabet + suffix.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$", re.DOTALL)
_RENAME_EXCHANGE = 2
# Lease breaks are signalled; SIGURG's default action is to ignore it, so no handler is needed.
_LEASE_SIGNAL = signal.SIGURG
_LEASE_TRIES = 20  # someone has the file open for writing: wait up to ~0.2 s for them to close it
_LEASE_WAIT = 0.01

_CONFLICT = "the file changed on disk during the run; not written"


def is_leftover(name: str) -> str | None:
    """The article name a temporary file of ours was written for, or None when ``name`` is not one."""
    match = _LEFTOVER.match(name)
    return match.group("name") if match else None


def _temp_prefix(name: str) -> str:
    return f".{name}."


def remove_leftovers(paths: Iterable[Path], before: float) -> tuple[int, list[tuple[Path, str]]]:
    """Remove temporary files of ours last modified before ``before`` (a POSIX time): a killed run's.

    Only regular files (never a symlink) whose name still has our exact pattern are removed. Returns how
    many were removed, and (path, reason) for each that could not be.
    """
    removed, failed = 0, []
    for path in paths:
        try:
            info = path.lstat()
            if is_leftover(path.name) is None or not stat.S_ISREG(info.st_mode) or info.st_mtime >= before:
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append((path, f"cannot remove this temporary file of an earlier run ({exc.strerror})"))
    return removed, failed


def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+, musl 1.2.2+
    except (AttributeError, OSError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    func.restype = ctypes.c_int
    renameat2: Callable[..., int] = func
    return renameat2


_RENAMEAT2 = _renameat2()


def _exchange(folder: int, first: str, second: str) -> bool:
    """Swap two names in ``folder`` atomically; False when this kernel or file system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(folder, os.fsencode(first), folder, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


def _take_lease(fd: int) -> bool:
    """A read lease on ``fd``: True when held. WriteConflict when someone keeps the file open for writing."""
    if not hasattr(fcntl, "F_SETLEASE"):  # leases are Linux's
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _LEASE_SIGNAL)
    except OSError:
        return False
    for _ in range(_LEASE_TRIES):
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
            return True
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                return False  # not the owner (EACCES), or no leases on this file system (EINVAL)
        time.sleep(_LEASE_WAIT)
    raise WriteConflict("the file is open for writing in another program; not written")


def _lease_broken(fd: int) -> bool:
    # During a break the kernel reports the type the lease must drop to (F_UNLCK), not F_RDLCK.
    return fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK


def _read_fd(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _copy_attributes(source: int, target: int, info: os.stat_result) -> None:
    """Mode, owner and extended attributes (ACLs, labels) of the original go to the new file."""
    os.fchmod(target, stat.S_IMODE(info.st_mode))
    with contextlib.suppress(PermissionError):  # only root may give a file away; others keep their own
        os.fchown(target, info.st_uid, info.st_gid)
    with contextlib.suppress(OSError, AttributeError):  # no xattrs on this file system or system
        for attr in os.listxattr(source):
            with contextlib.suppress(OSError):  # e.g. a security label only root may set
                os.setxattr(target, attr, os.getxattr(source, attr))


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, for messages: "a FIFO", "a character device"…"""
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kinds |= {stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def open_regular(path: Path | str, shown: Path | str) -> tuple[int, os.stat_result]:
    """Open a file for reading without ever blocking (a FIFO, a device); FrontMatterError unless regular.

    Raises OSError when it cannot be opened (a dangling symlink, no permission).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FrontMatterError(f"{shown}: {kind_of(info.st_mode)}, not a regular file")
    return fd, info


def replace_if_unchanged(real: Path, new: bytes, expected_old: bytes, shown: Path) -> None:
    """Put ``new`` at ``real`` atomically unless its bytes are no longer ``expected_old``.

    ``shown`` is the path as the user named it, for messages. See the module docstring for the guarantee.
    """
    try:
        fd, info = open_regular(real, shown)
    except OSError as exc:
        raise FrontMatterError(f"{shown}: cannot read before writing ({exc.strerror})") from None
    try:
        _replace(fd, info, real, new, expected_old, shown)
    except WriteConflict as exc:
        raise WriteConflict(f"{shown}: {exc}") from None
    except OSError as exc:
        raise FrontMatterError(f"{shown}: cannot write ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)  # also releases the lease


def _replace(fd: int, info: os.stat_result, real: Path, new: bytes, expected_old: bytes, shown: Path) -> None:
    if _read_fd(fd) != expected_old:
        raise WriteConflict(_CONFLICT)
    if new == expected_old:
        return
    if info.st_nlink > 1:
        raise FrontMatterError(
            f"{shown}: the file has {info.st_nlink} hard links and replacing it would break them; not written"
        )
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(real, os.W_OK):
        raise FrontMatterError(f"{shown}: the file is read-only; not written")
    folder = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp: str | None = None
    ours: int | None = None
    keep = False  # the file under the temporary name may hold the user's bytes: never removed
    try:
        tmp = _write_temp(real, new, fd, info)
        ours = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        ours_info = os.fstat(ours)
        ours_leased = _take_lease(ours)
        leased = _take_lease(fd)
        # An edit since the first read, or a save by rename (no need to swap then, it is seen now).
        if _read_fd(fd) != expected_old or not os.path.samestat(os.stat(real.name, dir_fd=folder), info):
            raise WriteConflict(_CONFLICT)
        if not _exchange(folder, tmp, real.name):
            os.replace(tmp, real.name, src_dir_fd=folder, dst_dir_fd=folder)
            tmp = None
            return
        if _untouched(folder, tmp, info, fd if leased else None, expected_old):
            return  # what came back is the file we read, unchanged: removed below
        try:
            _exchange(folder, tmp, real.name)  # the user's edited file goes back in place
        except OSError as exc:
            keep = True
            copy = _keep_as_copy(folder, tmp, real)
            raise FrontMatterError(
                f"{shown}: edited during the write, and the edit could not be put back ({exc.strerror}); "
                f"it is kept as {copy}"
            ) from None
        if _untouched(folder, tmp, ours_info, ours if ours_leased else None, new):
            raise WriteConflict(_CONFLICT)
        # Someone also edited our file in the microseconds it was in place: both edits are theirs.
        keep = True
        copy = _keep_as_copy(folder, tmp, real)
        raise WriteConflict(
            f"{_CONFLICT}; it was edited twice meanwhile, and the later edit is kept as {copy}"
        )
    finally:
        try:
            if ours is not None:
                os.close(ours)
            if tmp is not None and not keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=folder)
            os.fsync(folder)
        finally:
            os.close(folder)


def _write_temp(real: Path, new: bytes, original: int, info: os.stat_result) -> str:
    """A new file beside ``real`` holding ``new``, with the original's attributes, on disk; its name."""
    handle, path = tempfile.mkstemp(prefix=_temp_prefix(real.name), suffix=_SUFFIX, dir=real.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(new)
        out.flush()
        _copy_attributes(original, out.fileno(), info)
        os.fsync(out.fileno())
    return os.path.basename(path)


def _untouched(folder: int, name: str, identity: os.stat_result, leased: int | None, content: bytes) -> bool:
    """Is the file now under ``name`` the one we know, with ``content``, and nobody opened it to write?"""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    try:
        same = os.path.samestat(os.fstat(fd), identity) and _read_fd(fd) == content
    finally:
        os.close(fd)
    # Checked last, so that a writer who opened the file while we read it is seen too.
    return same and not (leased is not None and _lease_broken(leased))


def _keep_as_copy(folder: int, tmp: str, real: Path) -> Path:
    """Give the file under ``tmp`` a visible name beside the article (no pattern reads or removes it)."""
    copy = real.parent / f"{real.name}.conflict-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    os.rename(tmp, copy, src_dir_fd=folder)
    return copy
