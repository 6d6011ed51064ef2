"""The ``pipeline runs`` listing: one line per past run, and the start of a stored report.

Reads: run rows from ``HistoryStore.list_runs``; a stored report (``HistoryStore.get_report``'s JSON) is
read back once, by ``stored_report`` (``RunReport.from_json``). Returns: text. Settings: none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.report.files import json_chunks
from pipeline.report.render import render_html, render_markdown
from pipeline.report.schema import validate_report
from pipeline.runreport import RunReport


def stored_report(document: dict[str, Any] | None, *, validate: bool = False) -> RunReport | None:
    """The history's copy of a report (written by this or any earlier version) as a ``RunReport``;
    ``validate``: checked against the schema first (``ReportInvalid`` names what does not match)."""
    if document is None:
        return None
    if validate:
        validate_report(document)
    return RunReport.from_json(document)


def read_stored(
    run_id: str | None, settings: Settings, store: HistoryStore, *, validate: bool = False
) -> tuple[RunReport | None, list[dict[str, Any]]]:
    """A run's stored report (the latest finished run's when ``run_id`` is None) and its trend rows."""
    document = stored_report(store.get_report(run_id), validate=validate)
    # The chart of a past run ends at that run: the runs after it did not exist yet.
    return document, store.list_runs(settings.reports.trend_runs, until=run_start(document))


def run_start(report: RunReport | None) -> datetime | None:
    try:
        return datetime.fromisoformat(report.run.started_at) if report else None
    except (TypeError, ValueError):
        return None


def runs_table(rows: list[dict[str, Any]]) -> str:
    """One line per run; totals are unique URLs (as in the report), `exit` is the process exit code."""
    header = ("id", "started (UTC)", "mode", "kind", "articles", "urls", "checked", "dead", "failing", "exit")
    lines = [header]
    for row in rows:
        totals = row["totals"] or {}
        started = row["started_at"]
        lines.append(
            (
                row["id"],
                started.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if started else "—",
                row["mode"],
                ("outage " if row["outage"] else "") + (row["kind"] or "complete"),
                *(str(totals.get(key, "—")) for key in ("articles", "urls", "checked", "dead", "failing")),
                "running" if row["finished_at"] is None else str(row["exit_code"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def render_stored(document: RunReport, trend: list[dict[str, Any]], fmt: str) -> str:
    """A stored report in the format ``pipeline report --format`` names (text ending in a newline)."""
    if fmt == "json":
        return "".join(json_chunks(document))
    if fmt in ("md", "markdown"):
        return render_markdown(document)
    if fmt == "html":
        return render_html(document, trend)
    from pipeline.report.formats import render  # the CI formats

    return render(document, fmt)
