"""Run data -> the ``report.json`` document (schema in ``pipeline/report/schema.json``).

Reads: the run's verdicts, refs, changes and errors, the previous verdicts from history, and a summary of
the settings. Returns: a plain dict, ready for JSON; ``report.render`` renders it for people.

File names and file error messages are stored as printable text (a byte that is not UTF-8 reads ``\xff``,
a newline ``\n``): names are bytes on Linux, and the report and the history must stay valid UTF-8.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.check.hosts import HostStats
from pipeline.config import Settings
from pipeline.models import ALIVE, Change, FileError, LinkRef, LinkResult, LinkStatus, Snapshot, host_key
from pipeline.text import iso, printable

SCHEMA_VERSION = 1


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


def _copy(snapshot: Snapshot | None) -> dict[str, Any] | None:
    if snapshot is None or not snapshot.archive_url:
        return None
    return {"url": snapshot.archive_url, "timestamp": snapshot.timestamp}


def _change(change: Change) -> dict[str, Any]:
    return {
        "article": printable(change.article),
        "field_path": change.field_path,
        "old": change.old,
        "new": change.new,
        "source": change.source,
        **({"via": change.via} if change.via else {}),
    }


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
) -> dict[str, Any]:
    """The whole report document for one run (``archive``: copies of dead links, by URL; ``host_stats``:
    the checker's per-host politeness figures)."""
    where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    lines: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    invalid: dict[str, str] = {}
    copies = archive or {}
    for article, article_refs in refs.items():
        for ref in article_refs:
            key = ref.normalized or ref.url
            where[key][printable(article)].append(ref.field_path)
            lines[key][printable(article)].append(ref.line)
            if ref.normalized is None:
                invalid[key] = ref.invalid_reason

    links: list[dict[str, Any]] = []
    for url in sorted(where):
        result = results.get(url)
        if result is None:
            status = LinkStatus.INVALID if url in invalid else LinkStatus.SKIPPED
            reason = invalid.get(url) or excluded.get(url) or "not checked"
            result = LinkResult(url, status, reason=reason)
        before = previous.get(url)
        links.append(
            {
                "url": url,
                "status": str(result.status),
                "http_status": result.http_status,
                "final_url": result.final_url,
                "redirects": list(result.redirects),
                "reason": result.reason,
                "host": host_key(url) if result.status is not LinkStatus.INVALID else "",
                "previous_status": str(before) if before else None,
                "first_failed_at": iso(result.first_failed_at),
                "last_success_at": iso(result.last_success_at),
                "consecutive_failures": result.consecutive_failures,
                "checked_at": iso(result.checked_at),
                "articles": [
                    {"article": a, "field_paths": paths, "lines": lines[url][a]}
                    for a, paths in sorted(where[url].items())
                ],
                "archive": _copy(copies.get(url)),
            }
        )

    totals: dict[str, int] = {"articles": articles, "files_failed": len(errors), "urls": len(links)}
    for status in LinkStatus:
        totals[str(status)] = sum(1 for link in links if link["status"] == status)
    totals["changes"] = len(changes)
    totals["temp_files_removed"] = temp_files_removed
    totals["newly_dead"] = sum(1 for link in links if newly_dead(link["status"], link["previous_status"]))
    totals["recovered"] = sum(1 for link in links if recovered(link["status"], link["previous_status"]))
    politeness = [_politeness(stats) for _, stats in sorted((host_stats or {}).items())]
    totals["not_modified"] = sum(row["not_modified"] for row in politeness)

    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": run_id,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_seconds": round((finished - started).total_seconds(), 3),
            "exit_code": exit_code,
            "mode": mode,
            "outage": outage,
            "config": _config_summary(settings),
        },
        "totals": totals,
        "links": links,
        "changes": [_change(change) for change in changes],
        "discovered": [_change(change) for change in discovered],
        "refused_pages": [{"url": url, "reason": reason} for url, reason in refused_pages],
        "errors": [
            {"article": printable(error.article), "message": printable(error.message)} for error in errors
        ],
        "politeness": politeness,
    }


def _politeness(stats: HostStats) -> dict[str, Any]:
    # The checker keys hosts as host:port; the report's links name them as written (default port omitted).
    host = stats.host.removesuffix(":80").removesuffix(":443")
    return {
        "host": host,
        "got_429": stats.got_429,
        "got_503": stats.got_503,
        "pauses": stats.pauses,
        "paused_seconds": stats.paused_seconds,
        "lowest_concurrency": stats.lowest_concurrency,
        "not_modified": stats.not_modified,
    }


def newly_dead(status: str, previous: str | None) -> bool:
    """Dead in this run and not in the run before: the report's "newly dead" (one definition)."""
    return status == LinkStatus.DEAD and previous != LinkStatus.DEAD


def recovered(status: str, previous: str | None) -> bool:
    """Alive in this run after failing or being dead in the run before: the report's "recovered"."""
    return previous in (LinkStatus.DEAD, LinkStatus.FAILING) and status in ALIVE
