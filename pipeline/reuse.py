"""A quiet night's reuse of the last write pass: its URL digests, without reading every stored page.

Reads: the run's corpus (refs and sketches), link rules, settings, outage flag and archive copies, and
the history's count of rows written to the tables the evidence is read from (``evidence_writes``).
Returns: the *basis* of this night's evidence (or None), and the evidence's stored pages and probes
deferred: read from the history only when something reads them.

A night is quiet when it checked no due URL, read no page and probed no image: its evidence is then the
history's (verdicts, stored pages with their share probes, archive copies) as its corpus and settings
read it. The basis is a digest of all of that but the stored rows themselves, which the history's write
count stands for (triggers count every row written to ``links``, ``pages``, ``page_urls`` and
``archive``, by any writer). When the last write pass was made on a quiet night with the same basis,
every URL's evidence digest is the one it stored, and so is the set of images to probe (none: that night
probed none). The write pass then skips each settled article by its stored row alone, and the stored
pages are read only when an article must be decided again (a changed file, one not decided before).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from pipeline.extract.pages import PageReader
from pipeline.health.history import HistoryStore
from pipeline.health.pages import known_pages
from pipeline.models import ImageProbe, PageMeta
from pipeline.runstate import Run

V = TypeVar("V")


def basis(run: Run, archive: Mapping[str, str]) -> str | None:
    """What this night's evidence is made from, as a digest; None when it cannot be reused (not a quiet
    complete night, a dry run, or a history that does not count its writes)."""
    if run.options.dry_run or run.kind != "complete" or not run.quiet:
        return None
    writes = run.store.evidence_writes()
    if writes is None:
        return None
    settings, rules = run.settings, run.rules
    parts = (
        writes,
        [section.model_dump_json() for section in (settings.metadata, settings.health, settings.links)],
        run.outage is not None,
        [(rule.pattern.pattern, rule.pattern.flags, rule.origin) for rule in rules.excludes],
        [(rule.pattern.pattern, rule.pattern.flags, rule.origin) for rule in rules.includes],
        sorted(archive.items()),
        run.corpus.refs.digest(),
    )
    return hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class Deferred(Mapping[str, V]):
    """A mapping made on first use by ``load`` (then read through)."""

    __slots__ = ("_load", "_made")

    def __init__(self, load: Callable[[], Mapping[str, V]]) -> None:
        self._load = load
        self._made: Mapping[str, V] | None = None

    def _mapping(self) -> Mapping[str, V]:
        if self._made is None:
            self._made = self._load()
        return self._made

    def __getitem__(self, url: str) -> V:
        return self._mapping()[url]

    def __contains__(self, url: object) -> bool:
        return url in self._mapping()

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


class StoredEvidence:
    """This run's pages and probes completed from the history (``known_pages``), read once, when first
    needed: ``pages`` and ``probes`` are the two halves."""

    def __init__(self, store: HistoryStore, digest: PageReader, page_urls: set[str]) -> None:
        self._store, self._digest, self._page_urls = store, digest, page_urls
        self._known: tuple[Mapping[str, PageMeta], Mapping[str, ImageProbe]] | None = None
        self.pages: Mapping[str, PageMeta] = Deferred(lambda: self.load()[0])
        self.probes: Mapping[str, ImageProbe] = Deferred(lambda: self.load()[1])

    @property
    def loaded(self) -> bool:
        """Whether the stored pages have been read."""
        return self._known is not None

    def load(self) -> tuple[Mapping[str, PageMeta], Mapping[str, ImageProbe]]:
        """The pages and probes, read from the history the first time."""
        if self._known is None:
            self._known = known_pages(self._store, self._digest, self._page_urls)
        return self._known
