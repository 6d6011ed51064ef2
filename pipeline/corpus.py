"""Find article files under the corpus roots, and read them.

Reads: the folders and files named by ``corpus.roots``, matched by name against ``corpus.patterns``, and
each file's bytes up to ``corpus.max_file_bytes``. Returns: paths (or a :class:`~pipeline.models.FileError`
for a root or folder that cannot be walked) in a stable sorted order, and :class:`Article` records.

Hidden folders and files (a name starting with ``.``) are skipped. Symlinked folders are followed, but a
folder already being walked (a symlink loop) is reported instead of entered, and a file reached twice (the
same real path) is listed once.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import FrontMatterError
from pipeline.frontmatter.document import Document, parse
from pipeline.frontmatter.replace import is_leftover, kind_of, open_regular
from pipeline.models import FileError


@dataclass(frozen=True, slots=True)
class Article:
    """One article file as read: where it was found and its parsed document."""

    path: Path  # as discovered (under a root)
    doc: Document


def discover(
    roots: Sequence[Path], patterns: Sequence[str], leftovers: list[Path] | None = None
) -> Iterator[Path | FileError]:
    """Article files under each root whose name matches a pattern, then errors, in a stable order.

    A name that matches but is not a regular file (a FIFO, a device, a socket, a dangling symlink) is an
    error, never opened. With ``leftovers``, temporary files the writer left beside matching articles (a
    killed run's) are appended to it.
    """
    seen: set[str] = set()
    inside = tuple(os.path.realpath(root) for root in roots)
    for root in roots:
        if root.is_file():
            if _first_time(root, seen):
                yield root
        elif root.is_dir():
            yield from _walk(root, patterns, seen, (), inside, leftovers)
        elif os.path.lexists(root):  # a FIFO, a device or a dangling symlink given as a root
            yield FileError(str(root), _not_regular(root))
        else:
            yield FileError(str(root), "the corpus root does not exist (or is not a file or folder)")


def _first_time(path: Path, seen: set[str], real: str | None = None) -> bool:
    """Whether this is the first name found for its file (``real``: its real path, when known)."""
    real = real if real is not None else os.path.realpath(path)
    if real in seen:
        return False
    seen.add(real)
    return True


def _within(path: Path, inside: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in inside)


def _walk(
    folder: Path,
    patterns: Sequence[str],
    seen: set[str],
    ancestors: tuple[tuple[int, int], ...],
    inside: tuple[str, ...],
    leftovers: list[Path] | None,
) -> Iterator[Path | FileError]:
    try:
        info = folder.stat()
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        yield FileError(str(folder), f"cannot read the folder ({exc.strerror or exc})")
        return
    identity = (info.st_dev, info.st_ino)
    if identity in ancestors:
        yield FileError(str(folder), "symlink loop: this folder leads back to a folder that contains it")
        return
    # A name in this folder that is not a symlink has the folder's real path as its own parent: one
    # realpath per folder, not one (a syscall per path component) per file.
    real_folder = os.path.realpath(folder)
    for entry in entries:
        if entry.name.startswith("."):
            article = is_leftover(entry.name)
            if leftovers is not None and article and any(fnmatch.fnmatch(article, p) for p in patterns):
                leftovers.append(folder / entry.name)
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir()  # follows symlinks
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            yield FileError(str(path), f"cannot inspect ({exc.strerror or exc})")
            continue
        matches = not is_dir and any(fnmatch.fnmatch(entry.name, p) for p in patterns)
        if (is_dir or matches) and entry.is_symlink() and not _within(path, inside):
            # It could be read but never written back (writes stay inside the roots): say so once.
            yield FileError(str(path), "a symlink to outside the corpus roots; not followed")
        elif is_dir:
            yield from _walk(path, patterns, seen, (*ancestors, identity), inside, leftovers)
        elif matches and not is_file:
            yield FileError(str(path), _not_regular(path))
        elif matches and _first_time(
            path, seen, None if entry.is_symlink() else os.path.join(real_folder, entry.name)
        ):
            yield path


def _not_regular(path: Path) -> str:
    """Why a name that looks like an article is not one: it would block, or it leads nowhere."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "a dangling symlink: its target does not exist"
    except OSError as exc:
        return f"cannot inspect ({exc.strerror or exc})"
    return f"{kind_of(info.st_mode)}, not a regular file; not read"


def read_article(path: Path, max_bytes: int) -> Article:
    """Read and parse one article; raises FrontMatterError naming the path."""
    try:
        # Never blocks: a FIFO or a device put in an article's place is refused before any read.
        fd, info = open_regular(path, path)
        try:
            if info.st_size > max_bytes:
                raise FrontMatterError(
                    f"{path}: the file is too large ({info.st_size} bytes; the limit is {max_bytes})"
                )
            raw = _read_up_to(fd, info.st_size, max_bytes + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise FrontMatterError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise FrontMatterError(f"{path}: the file is too large (more than {max_bytes} bytes)")
    try:
        return Article(path, parse(raw))
    except FrontMatterError as exc:
        raise FrontMatterError(f"{path}: {exc}") from None


_GROWTH_CHUNK = 1 << 16  # what a file grown since its stat is read on by


def _read_up_to(fd: int, size: int, limit: int) -> bytes:
    """The open file's bytes, at most ``limit`` of them: its ``size`` as stat-ed in one read, then what it
    grew by since.

    A read asked for ``limit`` bytes at once makes a buffer of that size (10 MB by default) for every
    file, which cost more than reading a small article itself.
    """
    chunks = [os.read(fd, min(size + 1, limit))]
    got = len(chunks[0])
    while chunks[-1] and got < limit:
        chunks.append(os.read(fd, min(limit - got, _GROWTH_CHUNK)))
        got += len(chunks[-1])
    return b"".join(chunks)
