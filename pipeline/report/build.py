"""Run data -> the ``report.json`` document (schema in ``pipeline/report/schema.json``).

Reads: the run's verdicts, refs, changes and errors, the previous verdicts from history, and a summary of
the settings. Returns: the run's ``RunReport`` (built once; ``to_json()`` is report.json), which the
renderers, the CI formats, the summary line and the history read.

File names and file error messages are stored as printable text (a byte that is not UTF-8 reads ``\xff``,
a newline ``\n``): names are bytes on Linux, and the report and the history must stay valid UTF-8.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.models import (
    ALIVE,
    STATUSES,
    Change,
    FileError,
    LinkRef,
    LinkResult,
    LinkStatus,
    Snapshot,
    host_key,
)
from pipeline.plan import citations
from pipeline.runreport import (
    ArchiveCopy,
    ChangeRow,
    FileErrorRow,
    HostStats,
    LinkPlace,
    LinkRow,
    OutageStreak,
    RefusedPage,
    RunInfo,
    RunReport,
    Totals,
)
from pipeline.spool import Spool
from pipeline.text import iso, printable

if TYPE_CHECKING:
    from pipeline.report.early import EarlyLinks


def _config_summary(settings: Settings) -> dict[str, Any]:
    return {
        "roots": [printable(root) for root in settings.corpus.roots],
        "patterns": list(settings.corpus.patterns),
        "max_concurrency": settings.http.max_concurrency,
        "per_host_concurrency": settings.http.per_host_concurrency,
        "min_host_interval": settings.http.min_host_interval,
        "hard_threshold": settings.health.hard.model_dump(),
        "soft_threshold": settings.health.soft.model_dump(),
        "recheck_ok_after_days": settings.health.recheck_ok_after_days,
        "metadata": settings.metadata.enabled,
        "excerpt_policy": settings.metadata.excerpt.policy,
        "image_policy": settings.metadata.images.policy,
    }


def _copy(snapshot: Snapshot | None) -> ArchiveCopy | None:
    if snapshot is None or not snapshot.archive_url:
        return None
    return ArchiveCopy(snapshot.archive_url, snapshot.timestamp)


def _change(change: Change) -> ChangeRow:
    """A change as report.json has it: its values as JSON gives them back (a YAML date as its text), so
    every format shows what ``pipeline report`` shows later from the stored copy."""
    row = ChangeRow(
        printable(change.article),
        change.field_path,
        change.old,
        change.new,
        change.source,
        change.via or None,
    )
    if _json_native(row.old) and _json_native(row.new):
        return row
    return ChangeRow.from_json(json.loads(json.dumps(row.to_json(), default=json_default)))


def json_default(value: Any) -> Any:
    """How report.json writes a value JSON has no type for: a time or a date as ISO text, a path as text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"report.json: cannot write a {type(value).__name__}: {value!r}")


def _json_native(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def index_of(
    refs: Mapping[Path, Sequence[LinkRef]],
) -> tuple[list[str], list[tuple[str, int | None]], dict[str, array[int]], dict[str, str]]:
    """Where each URL is written, compactly: the articles' printable names, the distinct (field path, line)
    spots, and URL -> (article number, spot number) packed in one integer, in reading order; and the reason
    of each invalid URL. No ``LinkRef`` or ``Path`` is kept: the index is built beside everything else a
    run holds at its end."""
    names: list[str] = []
    spots: dict[tuple[str, int | None], int] = {}
    index: dict[str, array[int]] = {}
    invalid: dict[str, str] = {}
    for number, (article, cited) in enumerate(citations(refs)):
        names.append(printable(article))
        for field_path, url, normalized, reason, line, _ in cited:
            key = normalized or url
            places = index.get(key)
            if places is None:
                places = index[key] = array("q")
            spot = spots.get((field_path, line))
            if spot is None:
                spot = spots[field_path, line] = len(spots)
            places.append(number << _SPOT_BITS | spot)
            if normalized is None:
                invalid[key] = reason
    return names, list(spots), index, invalid


_SPOT_BITS = 32  # distinct (field path, line) pairs of a corpus: far fewer than 2**32


def places_of(
    packed: array[int], names: list[str], spots: list[tuple[str, int | None]]
) -> tuple[LinkPlace, ...]:
    """A URL's places: each article (by its printable name, sorted) with its field paths and lines."""
    if len(packed) == 1:  # most URLs: one ref in one article
        field_path, line = spots[packed[0] & ((1 << _SPOT_BITS) - 1)]
        return (LinkPlace(names[packed[0] >> _SPOT_BITS], (field_path,), (line,)),)
    where: dict[str, tuple[list[str], list[int | None]]] = {}
    for value in packed:  # in reading order: an article's refs come one after another
        paths, lines = where.setdefault(names[value >> _SPOT_BITS], ([], []))
        field_path, line = spots[value & ((1 << _SPOT_BITS) - 1)]
        paths.append(field_path)
        lines.append(line)
    return tuple(LinkPlace(a, tuple(paths), tuple(lines)) for a, (paths, lines) in sorted(where.items()))


def report_row(
    url: str,
    result: LinkResult,
    before: LinkStatus | None,
    places: tuple[LinkPlace, ...],
    copy: Snapshot | None,
) -> LinkRow:
    """A URL's report row: its verdict, its stored verdict before this run, its places, its archive copy."""
    return LinkRow(
        url=url,
        status=str(result.status),
        http_status=result.http_status,
        final_url=result.final_url,
        redirects=tuple(result.redirects),
        reason=result.reason,
        host=host_key(url) if result.status is not LinkStatus.INVALID else "",
        previous_status=str(before) if before else None,
        first_failed_at=iso(result.first_failed_at),
        last_success_at=iso(result.last_success_at),
        consecutive_failures=result.consecutive_failures,
        checked_at=iso(result.checked_at),
        articles=places,
        archive=_copy(copy),
    )


def _weight_of_places(row: LinkRow) -> int:
    """A link row's weight in its spool: its places hold most of its memory."""
    return max(1, len(row.articles))


def build_report(
    *,
    run_id: str,
    started: datetime,
    finished: datetime,
    exit_code: int,
    mode: str,
    outage: str | None,
    settings: Settings,
    articles: int,
    refs: Mapping[Path, Sequence[LinkRef]],
    results: Mapping[str, LinkResult],
    previous: Mapping[str, LinkStatus],
    excluded: Mapping[str, str],
    changes: Sequence[Change],
    discovered: Sequence[Change],
    refused_pages: Sequence[tuple[str, str]],
    errors: Sequence[FileError],
    temp_files_removed: int = 0,
    archive: Mapping[str, Snapshot] | None = None,
    host_stats: Mapping[str, HostStats] | None = None,
    kind: str = "complete",
    outage_streak: OutageStreak | None = None,
    checked: int | None = None,
    early: EarlyLinks | None = None,
) -> RunReport:
    """The whole report for one run (``archive``: copies of dead links, by URL; ``host_stats``: the
    checker's per-host politeness figures; ``checked``: URLs requested because they were due; ``early``:
    the rows of answered URLs made while the check ran, and the index of ``refs`` made then).

    The link and change rows go to spools (temporary files) one at a time, as they are made: a report
    of a million links is never held whole."""
    copies = archive or {}
    names, spots, index, invalid = early.index if early is not None else index_of(refs)
    links: Spool[LinkRow] = Spool(weigh=_weight_of_places)
    by_status = dict.fromkeys(STATUSES, 0)
    dead_now = back = 0
    for url in sorted(index):
        result = results.get(url)
        if result is None:
            status = LinkStatus.INVALID if url in invalid else LinkStatus.SKIPPED
            reason = invalid.get(url) or excluded.get(url) or "not checked"
            result = LinkResult(url, status, reason=reason)
        places = index.pop(url)
        made = early.take(url, result) if early is not None and url not in copies else None
        row = made or report_row(
            url, result, previous.get(url), places_of(places, names, spots), copies.get(url)
        )
        links.append(row)
        by_status[row.status] = by_status.get(row.status, 0) + 1
        dead_now += newly_dead(row.status, row.previous_status)
        back += recovered(row.status, row.previous_status)

    # The checker keys hosts as host:port; the report's links name them as written (default port omitted).
    politeness = tuple(
        replace(stats, host=stats.report_host) for _, stats in sorted((host_stats or {}).items())
    )
    totals = Totals(
        articles=articles,
        files_failed=len(errors),
        urls=len(links),
        by_status=by_status,
        changes=len(changes),
        temp_files_removed=temp_files_removed,
        newly_dead=dead_now,
        recovered=back,
        not_modified=sum(row.not_modified for row in politeness),
        checked=checked,
    )
    run = RunInfo(
        id=run_id,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        duration_seconds=round((finished - started).total_seconds(), 3),
        exit_code=exit_code,
        mode=mode,
        outage=outage,
        config=_config_summary(settings),
        kind=kind,
        outage_streak=outage_streak,
    )
    return RunReport(
        run=run,
        totals=totals,
        links=links,
        changes=Spool(_change(change) for change in changes),
        discovered=Spool(_change(change) for change in discovered),
        refused_pages=tuple(RefusedPage(url, reason) for url, reason in refused_pages),
        errors=tuple(FileErrorRow(printable(error.article), printable(error.message)) for error in errors),
        politeness=politeness,
    )


# Plain strings: an enum member's lookup costs microseconds on Python 3.11, and these run per link.
_DEAD, _FAILING = str(LinkStatus.DEAD), str(LinkStatus.FAILING)
_ALIVE = frozenset(map(str, ALIVE))


def newly_dead(status: str, previous: str | None) -> bool:
    """Dead in this run and not in the run before: the report's "newly dead" (one definition)."""
    return status == _DEAD and previous != _DEAD


def recovered(status: str, previous: str | None) -> bool:
    """Alive in this run after failing or being dead in the run before: the report's "recovered"."""
    return previous in (_DEAD, _FAILING) and status in _ALIVE
