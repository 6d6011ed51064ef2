"""Page metadata across runs: what of this run's pages to store, and what the store completes.

Reads: the pages and probes this run read (``extract.pages.PageReader``) and the history store. Returns: every
page's metadata and every probe known now. Settings: none.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator, Mapping
from datetime import datetime

from pipeline.extract.pages import PageReader, PageTable, ProbeTable
from pipeline.health.history import HistoryStore
from pipeline.links import normalize_url
from pipeline.models import (
    ImageProbe,
    PageMeta,
    StoredPage,
)


def store_pages(store: HistoryStore, digest: PageReader, due: set[str], now: datetime) -> None:
    """Keep the metadata of every page read for a due URL; forget pages now refused (error pages …).

    A page that answered without a body (a 304, a failure) is not in ``digest.pages``: its stored
    metadata stands.
    """
    fresh = (  # made as they are written, a chunk at a time
        StoredPage.from_meta(url, meta, now, *digest.validators.get(url, (None, None)))
        for url, meta in digest.pages.items()
        if url in due
    )
    store.record_pages(fresh, forget=[url for url, _ in digest.refused if url in due])


def known_pages(
    store: HistoryStore, digest: PageReader, page_urls: set[str]
) -> tuple[PageTable, Mapping[str, ImageProbe]]:
    """This run's pages and probes, completed from the store for pages not read (or not readable) now.

    The pages are ``digest.pages`` itself, completed; the probes are a view of ``digest.probes`` (the
    ones probed later included) before the stored ones.
    """
    refused = {url for url, _ in digest.refused}
    wanted = {u: u for u in page_urls if u not in digest.pages and u not in refused}
    pages = digest.pages  # completed in place: one map of every page, not a copy beside tonight's
    probes = ProbeTable()
    for page in store.stored_pages(wanted):
        url = wanted.get(page.url, page.url)  # the run's own string, not the row's copy
        pages[url] = digest.shared.kept(url, page.to_meta())
        probe = page.share_probe()
        key = normalize_url(page.image_url)[0] if probe is not None and page.image_url else None
        if probe is not None and key:
            probes[key] = probe
    return pages, ChainMap(digest.probes, probes)


_SHARE_PROBES = 5000  # share images' probes stored at once


def share_probes(
    pages: Mapping[str, PageMeta], probes: Mapping[str, ImageProbe]
) -> Iterator[dict[str, tuple[bool, int | None, int | None]]]:
    """What this run's probes showed about each page's share image, by the image URL the page declares: a
    chunk of images at a time (a large corpus has a share image per page; an image two chunks name is
    stored twice, the same)."""
    found: dict[str, tuple[bool, int | None, int | None]] = {}
    for meta in pages.values():
        if not meta.images:
            continue
        declared = meta.images[0].url
        probe = probes.get(normalize_url(declared)[0] or "")
        if probe is not None:
            found[declared] = (probe.alive, probe.width, probe.height)
            if len(found) >= _SHARE_PROBES:
                yield found
                found = {}
    if found:
        yield found
