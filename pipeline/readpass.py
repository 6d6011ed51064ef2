"""The read pass: every article file found, read, and reduced to its refs and a sketch of what it needs.

Reads: ``corpus.*`` (roots, patterns, size cap, ``read_processes``, ``pool_min_files``, ``pool_min_bytes``),
``links.*``, ``metadata.*``, ``health.*`` (for the sketch), and the history's ``files`` table.
Returns: a :class:`Corpus`; a file that cannot be read becomes a ``FileError`` and the pass goes on.

Each file is reduced to one compact entry (JSON: refs, sketch, revisit flag, whether it holds a link-health
block). An unchanged file (size, mtime, inode and settings digest as stored) is not opened: its entry comes
from the history. The files to parse go through a process pool when there are many, and their entries come
back in discovery order, so the result is the single-process one.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import multiprocessing
import os
import threading
import time
from array import array
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import decide
from pipeline.config import Settings
from pipeline.corpus import discover, read_article
from pipeline.errors import FrontMatterError
from pipeline.health.history import HistoryStore
from pipeline.links import extract_refs
from pipeline.models import (
    FileError,
)
from pipeline.reftable import RefTable

_BATCH = 500  # files per history query and per transaction
# The first batches, smaller and read before the rest of the corpus is found: their URLs are the first the
# overlapped check can send (50 for its first request, 200 for ten on each of twenty hosts).
_EARLY = (50, 150, 300)
_AHEAD = 3  # chunks queued per read process beyond the one being consumed
_ENTRY_VERSION = "2"  # bump when an entry's shape or what the read pass extracts changes


@dataclass
class Corpus:
    """What the read pass keeps of each article: its refs and a sketch, never the whole document."""

    refs: RefTable = field(default_factory=RefTable)  # with each article's sketch: ``sketches``
    revisit: set[Path] = field(default_factory=set)  # flags to clean up even when no URL is checked
    flagged: set[Path] = field(default_factory=set)  # holding a link-health block (of ours or the user's)
    errors: list[FileError] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # temporary files of the writer found beside articles

    @property
    def paths(self) -> Sequence[Path]:
        """Every article read, in discovery order."""
        return self.refs.paths

    @property
    def sketches(self) -> Mapping[Path, tuple[decide.UnitSketch, ...]]:
        """Each article's sketch (what image planning needs of it)."""
        return self.refs.sketches


def collect(
    settings: Settings,
    stop: threading.Event | None = None,
    store: HistoryStore | None = None,
    *,
    force: bool = False,
    record: bool = False,
    prune: bool = False,
    on_batch: Callable[[Corpus, list[str]], None] | None = None,
) -> Corpus:
    """Discover, read and extract refs from every article; bad files become FileErrors.

    With ``store``, a file whose size, mtime and inode are those it had when last read (with the same
    settings) is not parsed: its entry comes from the history; ``force`` parses every file. ``record``
    stores the entries of the files parsed now; ``prune`` forgets files no longer found (a whole corpus).
    ``on_batch`` sees the corpus and the articles it just gained (their paths' text) after each batch of
    files (the runner starts checking their URLs while the pass goes on).
    Stops early (with what it has) when ``stop`` is set; the caller sees the stop and ends the run.
    """
    corpus = Corpus()
    key = settings_digest(settings)
    known = store.load_files(key) if store is not None and not force else {}
    # A file modified within a second of the read could change again unseen within the same mtime tick.
    settled_before = time.time_ns() - 1_000_000_000
    # Held through the whole pass, so kept small: each file's path as its text (a ``Path`` costs about
    # 350 bytes more) and its size, mtime and inode as three numbers in one array (-1: could not stat).
    found: list[str | FileError] = []
    stats = array("q")  # by index into ``found``
    unchanged: set[str] = set()

    def read_batches(begin: int, parsing: Iterator[str | FileError]) -> bool:
        """The batches of ``found[begin:]``, each handed on; True when the pass stopped on request.
        ``parsing`` gives the entry of each file to parse among them, in order."""
        for begin_at, end in _batches(begin, len(found)):
            batch = found[begin_at:end]
            stored = (
                store.file_entries(os.fsencode(p) for p in batch if isinstance(p, str) and p in unchanged)
                if store is not None and unchanged
                else {}
            )
            rows = []
            added: list[str] = []  # no ``Path`` made for an article whose entry is stored
            stopped = False
            for n, item in enumerate(batch, begin_at):
                if isinstance(item, FileError):
                    corpus.errors.append(item)
                    continue
                name = os.fsencode(item)
                entry: str | FileError | None = stored.get(name)
                if entry is None:
                    # An unchanged file whose row went away meanwhile is read here, outside the pool's order.
                    entry = read_entry(Path(item), settings) if item in unchanged else next(parsing, None)
                    if entry is None:  # the pool stopped on request
                        stopped = True
                        break
                    if isinstance(entry, str) and stats[3 * n] >= 0 and stats[3 * n + 1] < settled_before:
                        rows.append((name, *_stat(stats, n), key, entry))
                if isinstance(entry, FileError):
                    corpus.errors.append(entry)
                else:
                    _add(corpus, item, entry)
                    added.append(item)
            if store is not None and record:
                store.record_files(rows)
            if on_batch is not None and added:
                on_batch(corpus, added)
            if stopped:
                return True
        return False

    hits = discover(settings.corpus.roots, settings.corpus.patterns, corpus.leftovers)
    try:
        # The first batches are read as soon as their files are found, before the others are: their URLs
        # are the first the overlapped check can send, and it needs ten a host at once to be busy (finding
        # and stat-ing 5,000 files took 0.05-0.07 s first). They are parsed here; the pool, when the whole
        # corpus asks for one, parses the rest (the same entries).
        stopped, count, size = False, 0, 0
        for batch in _EARLY:
            begin = len(found)
            _find(hits, found, stats, stop, batch)
            early, early_size = _to_parse(found, stats, begin, known, unchanged)
            count, size = count + len(early), size + early_size
            stopped = read_batches(begin, _parse_here(early, settings, stop))
            if stopped:
                break
        if not stopped:
            begin = len(found)
            _find(hits, found, stats, stop)
            rest, rest_size = _to_parse(found, stats, begin, known, unchanged)
            # Entries are decoded, and new ones stored, a batch at a time: no run holds every entry's text.
            parsing = _parse_all(rest, settings, stop, count + len(rest), size + rest_size)
            try:
                stopped = read_batches(begin, parsing)
            finally:
                parsing.close()
    finally:
        corpus.refs.seal()
    if store is not None and record and prune and not stopped and not (stop is not None and stop.is_set()):
        seen = {os.fsencode(p) for p in found if isinstance(p, str)}
        store.record_files((), forget=[name for name in known if name not in seen])
    return corpus


def _signed(inode: int) -> int:
    """An inode number as a signed 64-bit one (the array's and SQLite's integers): overlayfs with xino, NFS
    and SMB give numbers of 2**63 and more, which would not fit."""
    return inode - (1 << 64) if inode >= 1 << 63 else inode


def _stat(stats: array[int], n: int) -> tuple[int, int, int]:
    """The ``n``-th file's size, mtime and inode, as the history stores them."""
    return stats[3 * n], stats[3 * n + 1], stats[3 * n + 2]


def _find(
    hits: Iterator[Path | FileError],
    found: list[str | FileError],
    stats: array[int],
    stop: threading.Event | None,
    limit: int | None = None,
) -> None:
    """The next ``limit`` files (all, without one) ``discover`` finds, and their stats, onto ``found``."""
    for hit in itertools.islice(hits, limit):
        if stop is not None and stop.is_set():
            break
        found.append(hit if isinstance(hit, FileError) else os.fspath(hit))
        try:
            info = hit.stat() if isinstance(hit, Path) else None
        except OSError:  # read_article reports it
            info = None
        stats.extend((info.st_size, info.st_mtime_ns, _signed(info.st_ino)) if info else (-1, -1, -1))


def _to_parse(
    found: list[str | FileError],
    stats: array[int],
    begin: int,
    known: Mapping[bytes, tuple[int, int, int]],
    unchanged: set[str],
) -> tuple[list[str], int]:
    """The files of ``found[begin:]`` to parse, and their bytes; the unchanged ones go to ``unchanged``."""
    to_parse: list[str] = []
    size = 0
    for n in range(begin, len(found)):
        item = found[n]
        if isinstance(item, FileError):
            continue
        if stats[3 * n] >= 0 and known.get(os.fsencode(item)) == _stat(stats, n):
            unchanged.add(item)
        else:
            to_parse.append(item)
            size += max(stats[3 * n], 0)
    return to_parse, size


def _batches(begin: int, count: int) -> Generator[tuple[int, int], None, None]:
    """``[begin, end)`` of each batch of ``_BATCH`` files from ``begin`` to ``count``."""
    while begin < count:
        yield begin, min(begin + _BATCH, count)
        begin += _BATCH


def settings_digest(settings: Settings) -> str:
    """A digest of the settings a read-pass entry depends on; another digest means reading again."""
    text = _ENTRY_VERSION + "".join(
        section.model_dump_json() for section in (settings.links, settings.metadata, settings.health)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_entry(path: Path, settings: Settings) -> str | FileError:
    """Read and parse one article into its compact entry (JSON text), or the FileError saying why not."""
    try:
        article = read_article(path, settings.corpus.max_file_bytes)
    except FrontMatterError as exc:
        return file_error(path, exc)
    data = article.doc.data
    refs = extract_refs(article.path, data, settings.links, article.doc.line_of)
    entry = {
        "r": [[r.field_path, r.url, r.normalized, r.invalid_reason, r.line, list(r.path)] for r in refs],
        "s": [[list(u.page_urls), list(u.image_urls), u.images_empty] for u in decide.sketch(data, settings)],
        "v": decide.stale_flags(data, refs, settings),
        "h": settings.health.flag_field in data,
    }
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def _add(corpus: Corpus, name: str, entry: str) -> None:
    """One article's entry into the corpus (``name``: its path's text, kept by the ``RefTable``).

    Equal values (URLs, field paths) are one object across the articles: a URL cited by many articles,
    and the field paths every article repeats, are kept once (memory is the limit on large corpora: the
    refs and sketches are all the read pass keeps).
    """
    data = json.loads(entry)
    refs = (
        (field_path, url, normalized, reason, line, tuple(parts))
        for field_path, url, normalized, reason, line, parts in data["r"]
    )
    corpus.refs.add_values(name, refs, (decide.UnitSketch(tuple(p), tuple(i), e) for p, i, e in data["s"]))
    if data["v"]:
        corpus.revisit.add(Path(name))
    if data["h"]:
        corpus.flagged.add(Path(name))


def _parse_here(
    paths: list[str], settings: Settings, stop: threading.Event | None
) -> Generator[str | FileError, None, None]:
    """Each path's entry, in order, read in this process."""
    for path in paths:
        if stop is not None and stop.is_set():
            return
        yield read_entry(Path(path), settings)


def _parse_all(
    paths: list[str], settings: Settings, stop: threading.Event | None, count: int, size: int
) -> Generator[str | FileError, None, None]:
    """Each path's entry, in order: in a process pool when the read pass has many files (``count``) of
    many bytes (``size``) to parse (both cores), else here."""
    processes = settings.corpus.read_processes or os.cpu_count() or 1
    few = count < settings.corpus.pool_min_files or size < settings.corpus.pool_min_bytes
    if processes < 2 or few or not paths:
        yield from _parse_here(paths, settings, stop)
        return
    chunk = max(1, min(200, len(paths) // (processes * 8)))
    chunks = [paths[begin : begin + chunk] for begin in range(0, len(paths), chunk)]
    # forkserver: the children are clean processes, whatever threads the parent runs (the daemon's).
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_init_worker, initargs=(settings,)
    ) as pool:
        # A few chunks ahead of the one consumed, not all: the workers parse faster than the runner takes
        # the entries in, and every entry queued is held in memory until it is taken.
        ahead: collections.deque[Future[list[str | FileError]]] = collections.deque()
        pending = iter(chunks)
        try:
            while True:
                while len(ahead) < processes * _AHEAD and (next_chunk := next(pending, None)) is not None:
                    ahead.append(pool.submit(_read_in_worker, next_chunk))
                if not ahead:
                    return
                for entry in ahead.popleft().result():
                    if stop is not None and stop.is_set():
                        return
                    yield entry
        finally:
            pool.shutdown(cancel_futures=True)


_worker_settings: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings


def _read_in_worker(paths: list[str]) -> list[str | FileError]:
    assert _worker_settings is not None
    return [read_entry(Path(path), _worker_settings) for path in paths]


def file_error(path: Path, exc: Exception) -> FileError:
    """A FileError whose message does not repeat the path it is filed under."""
    return FileError(str(path), str(exc).removeprefix(f"{path}: "))
