"""The archive stage of a run: which dead links want a copy, when they were cited, cache, then lookups.

Reads: the run's verdicts, the corpus's refs (and, again, the few articles that cite a link still to be
looked up, for their ``publishedDateTime``), the history database's ``archive`` table and settings
``health.archive`` (the requests themselves: :mod:`pipeline.health.archive`). Returns every copy known for the
run's dead links, by URL; records this run's answers unless it is a dry run. In an outage run nothing is
asked (our own network is down): cached copies are still returned.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.corpus import read_article
from pipeline.errors import FrontMatterError
from pipeline.health import archive
from pipeline.health.history import HistoryStore
from pipeline.models import LinkRef, LinkResult, Snapshot

_NESTED_ITEM = re.compile(r"([^.\[]+)\[(\d+)\]\.")


def find_copies(
    paths: Sequence[Path],
    refs: Mapping[Path, Sequence[LinkRef]],
    results: Mapping[str, LinkResult],
    store: HistoryStore,
    settings: Settings,
    now: datetime,
    outage: str | None,
    dry_run: bool,
    stop: threading.Event,
) -> dict[str, Snapshot]:
    """Archive copies of the run's dead links: cached ones, and new lookups."""
    config = settings.health.archive
    wanted = archive.candidates(results, config) if config.enabled else []
    if not wanted:
        return {}
    cached = store.load_archive(wanted)
    if outage:
        return {url: snap for url, snap in cached.items() if snap.archive_url}
    due = {url for url in wanted if archive.is_due(cached.get(url), config, now)}
    dates = citation_stamps(paths, refs, due, settings)
    # Pauses (spacing, a 429's Retry-After of up to a minute) wait on the stop event: SIGTERM cuts them short.
    client = archive.ArchiveClient(settings, sleep=stop.wait, stop=stop.is_set)
    try:
        known, fresh = archive.lookup(wanted, dates, cached, settings, now, client, stop=stop.is_set)
    finally:
        client.close()
    if not dry_run:
        store.record_archive(fresh)
    return known


def _unit(data: Mapping[str, Any], field_path: str, nested: Sequence[str]) -> Mapping[str, Any]:
    """The unit (a ``related[i]`` item, or the article) that holds ``field_path``."""
    match = _NESTED_ITEM.match(field_path)
    if match and match.group(1) in nested:
        items = data.get(match.group(1))
        index = int(match.group(2))
        if isinstance(items, list) and index < len(items) and isinstance(items[index], Mapping):
            return items[index]  # type: ignore[no-any-return]
    return data


def citation_stamps(
    paths: Sequence[Path], refs: Mapping[Path, Sequence[LinkRef]], urls: set[str], settings: Settings
) -> dict[str, str]:
    """Per URL, the earliest ``publishedDateTime`` of a unit citing it (a related item's own, else the
    article's), as a Wayback timestamp. Only the articles naming these URLs are read again (memory stays
    flat: the read pass keeps no documents)."""
    stamps: dict[str, str] = {}
    if not urls:
        return stamps
    nested = tuple(settings.links.nested)
    for path in paths:
        citing = [ref for ref in refs.get(path, ()) if ref.normalized in urls]
        if not citing:
            continue
        try:
            data = read_article(path, settings.corpus.max_file_bytes).doc.data
        except FrontMatterError:
            continue  # the write pass reports it; a copy without a date is still a copy
        for ref in citing:
            unit = _unit(data, ref.field_path, nested)
            stamp = archive.wayback_timestamp(unit.get("publishedDateTime")) or archive.wayback_timestamp(
                data.get("publishedDateTime")
            )
            url = ref.normalized
            if stamp and url is not None and (url not in stamps or stamp < stamps[url]):
                stamps[url] = stamp
    return stamps
