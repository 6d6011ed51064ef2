"""The write pass: re-read each article with evidence, decide its edits, write it (or print its diff).

Reads: the read pass's paths and refs, the run's ``Evidence``, ``corpus.max_file_bytes``, ``corpus.roots``,
``links.*``, ``metadata.*``, ``health.*``. Returns: the changes, the discoveries and the files that failed;
one bad file never stops the pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from pipeline import decide
from pipeline.config import Settings
from pipeline.console import print_diff
from pipeline.corpus import Article, read_article
from pipeline.errors import FrontMatterError, Interrupted, ThroughMerge
from pipeline.frontmatter.document import apply, write_atomic
from pipeline.health.history import HistoryStore
from pipeline.health.results import ResultTable
from pipeline.links import extract_refs
from pipeline.models import (
    Change,
    Edit,
    Evidence,
    FileError,
    LinkStatus,
    RunOptions,
    format_field_path,
)
from pipeline.readpass import Corpus, file_error
from pipeline.spool import Spool

log = logging.getLogger("pipeline")
_BATCH = 500  # articles whose "needed no change" rows are read at once


class AnyOf(Container[str]):
    """The URLs in any of some containers: their union, asked without making a set of it (a large corpus's
    URLs, in the write pass's peak)."""

    def __init__(self, *parts: Container[str]) -> None:
        self.parts = parts

    def __contains__(self, url: object) -> bool:
        return any(url in part for part in self.parts)


def write_pass(
    corpus: Corpus,
    checked: Container[str],
    evidence: Evidence,
    settings: Settings,
    options: RunOptions,
    out: TextIO,
    store: HistoryStore | None = None,
    urls: Iterable[str] = (),
    *,
    basis: str | None = None,
    reuse: bool = False,
) -> tuple[Spool[Change], Spool[Change], list[FileError]]:
    """Re-read each article that names a URL in ``checked``, decide, and write it (or print its diff).

    An article naming no such URL has no evidence and is skipped; so is one whose file (size, mtime) and
    evidence are those it had when it last needed no change (recorded in ``store``): known without its
    digest when none of its URLs' evidence changed since (``urls``: every URL the corpus cites, whose
    evidence digests are compared with the stored ones), else by its digest. ``basis``: what this
    night's evidence is made from, when it is a quiet night (``pipeline.reuse``), recorded with the
    digests; ``reuse``: the stored digests are this night's (the last write pass had this basis), so
    none is computed and a settled article is skipped before anything of its evidence is read.
    Re-reading keeps memory flat on large corpora, and ``write_atomic`` compares the bytes on disk with
    the bytes this pass read, so an edit made meanwhile is never overwritten. Stops between files on request.
    """
    # A cold night changes a few fields of most articles: the changes go to temporary files, not memory.
    changes: Spool[Change] = Spool()
    discovered: Spool[Change] = Spool()
    errors: list[FileError] = []
    if not _any_may_edit(corpus, evidence, settings):
        # Nothing to read, decide or stamp: the URLs' evidence generations are only compared for articles
        # this pass decides, so not recording them tonight loses nothing (the next pass compares its
        # evidence with the last one recorded).
        if options.stop.is_set():
            raise Interrupted
        return changes, discovered, errors
    # An unchanged file whose evidence is what it was when it last needed no change needs none now.
    settings_key = "".join(
        section.model_dump_json() for section in (settings.metadata, settings.health, settings.links)
    )
    tracked = store is not None and not options.dry_run
    key = hashlib.blake2b(f"{settings_key}{evidence.outage}".encode(), digest_size=8).hexdigest()
    generation, marks = 0, dict[str, int]()
    if store is not None and tracked:
        generation, marks = _url_generations(
            store, urls, evidence, forget=not options.partial, basis=basis, reuse=reuse
        )
    settled: list[tuple[bytes, int, int, str]] = []
    try:
        for path, decided in _with_rows(corpus, store):
            if options.stop.is_set():
                raise Interrupted
            if store is not None and tracked and len(settled) >= _BATCH:  # never every article's row at once
                store.record_decided(settled)
                settled = []
            urls = corpus.refs.normalized_urls(path)
            if reuse and _settled(path, decided, key, urls, marks):
                continue  # what the checks below would find, known without reading its evidence
            if path not in corpus.revisit and not any(url in checked for url in urls):
                continue
            if not _may_edit(path, corpus, evidence, settings):
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                errors.append(FileError(str(path), f"cannot read ({exc.strerror or exc})"))
                continue
            name = os.fsencode(path)  # file names need not be UTF-8
            row = decided.get(name)
            # What it was decided on, when the file is the one it was then.
            stamp = row[2] if row is not None and row[:2] == (stat.st_size, stat.st_mtime_ns) else None
            if stamp is not None and _unchanged_since(stamp, key, urls, marks):
                continue  # the common case: none of its URLs' evidence changed since it was decided
            digest = decide.fingerprint(corpus.refs[path], evidence, settings_key)
            state = (stat.st_size, stat.st_mtime_ns, f"{digest} {generation} {key}" if tracked else digest)
            if stamp is not None and stamp.split(" ")[0] == digest:
                if tracked:  # its evidence changed back, or was decided before generations: stamped now
                    settled.append((name, *state))
                continue
            if _write_one(path, evidence, settings, options, out, changes, discovered, errors):
                settled.append((name, *state))
    finally:
        if store is not None and not options.dry_run:
            store.record_decided(settled)
    return changes, discovered, errors


def _with_rows(corpus: Corpus, store: HistoryStore | None) -> Iterator[tuple[Path, dict[bytes, _Row]]]:
    """Every article's path with the stored rows of its batch's articles that needed no change (asked a
    batch at a time: never every file's row at once)."""
    paths = corpus.paths
    for begin in range(0, len(paths), _BATCH):
        batch = paths[begin : begin + _BATCH]
        rows = store.load_decided(os.fsencode(p) for p in batch) if store is not None else {}
        for path in batch:
            yield path, rows


_Row = tuple[int, int, str]  # a stored decision: the file's size and mtime, what it was decided on


_EVIDENCE_ROWS = 5000  # URLs' new evidence digests stored at once
_NEVER = 1 << 62  # the generation of a URL whose evidence changed now or was never recorded


def _url_generations(
    store: HistoryStore,
    urls: Iterable[str],
    evidence: Evidence,
    *,
    forget: bool,
    basis: str | None = None,
    reuse: bool = False,
) -> tuple[int, dict[str, int]]:
    """This pass's evidence generation, and for each URL whose evidence is unchanged the earlier generation
    in which it last changed. A URL left out changed in this generation (later than any decision, as a URL
    never recorded): its digest differs from the stored one, which is then replaced.

    ``forget``: the URLs are every URL of the corpus, so stored ones not among them go. ``reuse``: the
    stored digests are this evidence's (see ``write_pass``), so they stand when they are every URL's.
    """
    generation = store.next_generation()
    stored = store.url_evidence()
    urls = list(urls)
    if reuse and stored.keys() == set(urls):
        return generation, {url: changed for url, (_, changed) in stored.items()}  # basis as stored
    marks: dict[str, int] = {}  # a cold night's URLs all changed: none kept here (memory)
    new: list[tuple[str, str, int]] = []
    for url in urls:
        digest = decide.url_digest(url, evidence)
        known = stored.pop(url, None)
        if known is not None and known[0] == digest:
            marks[url] = known[1]
        else:
            new.append((url, digest, generation))
            if len(new) >= _EVIDENCE_ROWS:  # stored a chunk at a time, never every URL's row at once
                store.record_url_evidence(new)
                new = []
    store.record_url_evidence(new, forget=stored if forget else ())
    store.set_evidence_basis(basis if forget else None)
    return generation, marks


def _settled(
    path: Path, decided: dict[bytes, _Row], key: str, urls: list[str], marks: dict[str, int]
) -> bool:
    """Whether the article's file is the one it was decided on and none of its URLs' evidence changed
    since (the common case on a quiet night): stat and its stored row, no evidence read."""
    try:
        stat = path.stat()
    except OSError:  # the pass reports it, if it visits the article
        return False
    row = decided.get(os.fsencode(path))
    return (
        row is not None
        and row[:2] == (stat.st_size, stat.st_mtime_ns)
        and _unchanged_since(row[2], key, urls, marks)
    )


def _unchanged_since(stamp: str, key: str, urls: Iterable[str], marks: dict[str, int]) -> bool:
    """Whether an article decided as ``stamp`` says (digest, generation, settings key) saw the evidence it
    would see now: the same settings and outage flag, and no URL of it changed in a later generation."""
    parts = stamp.split(" ")
    if len(parts) != 3 or parts[2] != key:
        return False
    decided_in = int(parts[1])
    return all(marks.get(url, _NEVER) <= decided_in for url in urls)


def _any_may_edit(corpus: Corpus, evidence: Evidence, settings: Settings) -> bool:
    """Whether ``_may_edit`` can hold for any article, known without visiting each: on a check-only night
    with no dead URL and no link-health block (the common one) it holds for none."""
    if settings.metadata.enabled:
        return True
    if not settings.health.flag or evidence.outage:
        return False
    if corpus.flagged:
        return True
    results = evidence.results
    if isinstance(results, ResultTable):  # the run's own: its statuses known without decoding a verdict
        return LinkStatus.DEAD in results.statuses()
    return any(result.status is LinkStatus.DEAD for result in results.values())


def _may_edit(path: Path, corpus: Corpus, evidence: Evidence, settings: Settings) -> bool:
    """Whether ``decide`` could edit this article at all, known without re-reading it.

    With the metadata refresh off (``--check-only``) the only edit is the link-health block: an article
    holding no such block and citing no dead URL gets none, so a check-only night re-reads only those.
    """
    if settings.metadata.enabled:
        return True
    if not settings.health.flag or evidence.outage:
        return False
    if path in corpus.flagged:
        return True
    results = evidence.results
    return any(
        (result := results.get(ref.normalized)) is not None and result.status is LinkStatus.DEAD
        for ref in corpus.refs[path]
        if ref.normalized is not None
    )


def _write_one(
    path: Path,
    evidence: Evidence,
    settings: Settings,
    options: RunOptions,
    out: TextIO,
    changes: Spool[Change],
    discovered: Spool[Change],
    errors: list[FileError],
) -> bool:
    """Decide one article and write it (or print its diff); its changes, discoveries and errors are added.

    Returns whether the article needed nothing: no change and no error.
    """
    try:
        article = read_article(path, settings.corpus.max_file_bytes)
        refs = extract_refs(path, article.doc.data, settings.links)
        decision = decide.decide(str(path), article.doc.data, refs, evidence, settings)
        discovered.extend(decision.discovered)
        if not decision.edits:
            return True
        new, made, refused = _apply_around_merges(article, decision)
        errors.extend(refused)
        if new == article.doc.raw:
            return not refused
        if options.dry_run:
            print_diff(out, article.path, article.doc.raw, new)
        else:
            write_atomic(path, new, article.doc.raw, settings.corpus.roots)
        changes.extend(made)
        for change in made:
            log.debug("%s: %s: %r -> %r", change.article, change.field_path, change.old, change.new)
    except FrontMatterError as exc:
        errors.append(file_error(path, exc))
    return False


def _apply_around_merges(
    article: Article, decision: decide.Decision
) -> tuple[bytes, list[Change], list[FileError]]:
    """The article with the decided edits, leaving out (and reporting) each edit made through a merge key.

    An article using ``<<: *base`` is checked and edited like any other; only an edit whose value comes
    through the merge would change the base (and every article sharing it), so that edit alone is refused.
    """
    try:
        return apply(article.doc, decision.edits), list(decision.changes), []
    except ThroughMerge:
        pass
    kept: list[Edit] = []
    refused: list[FileError] = []
    refused_paths: list[str] = []
    for edit in decision.edits:
        try:
            apply(article.doc, [edit])
        except ThroughMerge as exc:
            refused.append(FileError(str(article.path), str(exc)))
            refused_paths.append(format_field_path(edit.path))
            continue
        kept.append(edit)

    def made_by_kept(change: Change) -> bool:
        return not any(
            change.field_path == refused or change.field_path.startswith((f"{refused}.", f"{refused}["))
            for refused in refused_paths
        )

    return apply(article.doc, kept), [c for c in decision.changes if made_by_kept(c)], refused
