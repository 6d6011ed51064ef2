"""The view model of a report: sections of links, per-host rows, trend geometry, dates and
durations for people.

Reads: a ``RunReport`` and the trend rows (``HistoryStore.list_runs``).
Returns: plain dicts and tuples the templates render. Settings: none.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from pipeline.models import STATUSES, ExitCode
from pipeline.report.build import newly_dead, recovered
from pipeline.runreport import POLITENESS_FIELDS, HostStats, LinkRow, RunReport
from pipeline.text import printable

_MAX_ARTICLES_SHOWN = 5


_MAX_TREND_RUNS = 60


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# A run that did not check the whole corpus: shown as such, never made `latest` over a complete run.
_KIND_NOTES = {
    "partial": "partial: only some paths or --include URLs were checked",
    "interrupted": "interrupted: stopped before the end",
}


def run_kind(run: dict[str, Any]) -> str:
    """A history run row's kind: ``complete``, ``partial`` or ``interrupted`` (rows recorded before kinds
    existed are complete)."""
    kind = run.get("kind")
    return kind if kind in _KIND_NOTES else "complete"


# A report of a large corpus is summarised in report.md and report.html (report.json has every row):
# each section shows its first rows up to these caps, and says how many it holds.
MAX_SECTION_ROWS = 10_000  # a problem section (newly dead, failing, …), the changes, the discoveries
MAX_ALL_LINKS = 1_000  # the "All links" table of report.html: healthy links are counted, not listed

T = TypeVar("T")


class Shown(list[T]):
    """The first rows of a section, in order, and how many rows the section holds (``total``)."""

    def __init__(self, rows: Iterable[T], total: int) -> None:
        super().__init__(rows)
        self.total = total


def total(rows: Sized) -> int:
    """How many rows a section holds, shown or not (the templates' ``total`` filter)."""
    return int(getattr(rows, "total", len(rows)))


class _First(Generic[T]):
    """The ``cap`` first rows by ``key`` of those added, kept without holding them all; and the count."""

    def __init__(self, cap: int, key: Callable[[T], Any]) -> None:
        self.cap, self.key, self.rows, self.total = cap, key, list[T](), 0
        self._last: Any = None  # once ``cap`` rows are kept: the key of the last of them

    def add(self, row: T) -> None:
        self.total += 1
        # A row sorting at or after the last one kept can never be shown (the sort is stable, and it came
        # later): not kept at all. Most links of a night arrive in order and stop here.
        if self._last is not None and not self.key(row) < self._last:
            return
        self.rows.append(row)
        if len(self.rows) >= 2 * self.cap:  # the sort is stable: this keeps what sorted()[:cap] keeps
            self.rows.sort(key=self.key)
            del self.rows[self.cap :]
            self._last = self.key(self.rows[-1])

    def shown(self) -> Shown[T]:
        self.rows.sort(key=self.key)
        return Shown(self.rows[: self.cap], self.total)


@dataclass(frozen=True, slots=True)
class _Sections:
    newly_dead: Shown[LinkRow]
    recovered: Shown[LinkRow]
    still_dead: Shown[LinkRow]
    failing: Shown[LinkRow]
    blocked: Shown[LinkRow]
    redirected: Shown[LinkRow]
    invalid: Shown[LinkRow]


def _by_host(link: LinkRow) -> tuple[str, str]:
    return link.host, link.url


def _failing_key(link: LinkRow) -> tuple[int, str, str]:
    """Failing links: the longest failing first, then by host and URL."""
    return -int(link.consecutive_failures or 0), link.host, link.url


def _sections_of(link: LinkRow) -> Iterator[str]:
    """The report sections a link belongs to (an ok link that was ok before is in none)."""
    if newly_dead(link.status, link.previous_status):
        yield "newly_dead"
    elif link.status == "dead" and link.previous_status == "dead":
        yield "still_dead"
    if recovered(link.status, link.previous_status):
        yield "recovered"
    if link.status == "redirected" and link.final_url and link.final_url != link.url:
        yield "redirected"
    if link.status in ("failing", "blocked", "invalid"):
        yield link.status


class Summariser:
    """What report.md and report.html show of the links, gathered a link at a time (``add``): the sections
    (by host and URL; failing ones longest first), the first rows of the "All links" table (by status,
    then URL) and the per-host table. A run feeds it the links as it writes report.json, so the rows are
    read once for all three files."""

    def __init__(self, politeness: tuple[HostStats, ...] = ()) -> None:
        self.politeness = politeness
        self.first: dict[str, _First[LinkRow]] = {
            name: _First(MAX_SECTION_ROWS, _by_host) for name in _Sections.__dataclass_fields__
        }
        self.first["failing"] = _First(MAX_SECTION_ROWS, _failing_key)
        self.everything = _First[LinkRow](MAX_ALL_LINKS, lambda lnk: (STATUSES.index(lnk.status), lnk.url))
        self.table: dict[str, Counter[str]] = {}

    def add(self, link: LinkRow) -> None:
        for section in _sections_of(link):
            self.first[section].add(link)
        self.everything.add(link)
        if link.host:
            counts = self.table.get(link.host)
            if counts is None:
                counts = self.table[link.host] = Counter()
            counts[link.status] += 1
            counts["urls"] += 1

    def summary(self) -> Summary:
        sections = _Sections(**{name: rows.shown() for name, rows in self.first.items()})
        return sections, self.everything.shown(), _hosts(self.table, self.politeness)


def _hosts(table: dict[str, Counter[str]], politeness: tuple[HostStats, ...] = ()) -> list[dict[str, Any]]:
    """Per-host counts of each status and the checker's politeness figures, most dead and failing first."""
    polite = {row.host: row for row in politeness}
    order = sorted(table.items(), key=lambda hc: (-(hc[1]["dead"] + hc[1]["failing"]), -hc[1]["urls"], hc[0]))
    return [
        {
            "host": host,
            **{k: counts[k] for k in ("urls", *STATUSES)},
            **{k: getattr(polite[host], k) for k in POLITENESS_FIELDS if host in polite},
        }
        for host, counts in order
    ]


def _first(rows: Sequence[T]) -> Shown[T]:
    return Shown(rows[:MAX_SECTION_ROWS], len(rows))


def _parse_time(value: Any) -> datetime | None:
    """A moment from report JSON (an ISO string) or from ``HistoryStore.list_runs`` (a datetime)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M UTC") if parsed else "—"


def _day(value: Any) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d") if parsed else "—"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _href(url: Any) -> str | None:
    """The URL itself when it is safe to link to (http or https), else None: no javascript: or data: links."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if (
        parts.scheme.lower() in ("http", "https")
        and parts.netloc
        and not re.search(r"[\s\x00-\x1f\x7f]", url)
        and printable(url) == url
    ):
        return url
    return None


def _value(value: Any, limit: int = 300) -> str:
    """A change's old or new value as text for people: strings as they are, anything else as JSON."""
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trend(report: RunReport, trend: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the trend chart: one stacked bar per run up to this one, oldest on the left."""
    run = report.run
    started = _parse_time(run.started_at)
    runs = [
        item
        for item in trend
        if item.get("id") == run.id
        or (started and (_parse_time(item.get("started_at")) or started) <= started)
    ]
    if not any(item.get("id") == run.id for item in runs):
        # This run as a history row (the trend's rows are the history's).
        row = {"id": run.id, "started_at": run.started_at, "exit_code": run.exit_code, "outage": run.outage}
        runs.insert(0, {**row, "kind": run.kind, "totals": report.totals.to_json()})
    runs.sort(key=lambda item: _parse_time(item.get("started_at")) or _EPOCH, reverse=True)
    runs = runs[:_MAX_TREND_RUNS][::-1]
    layers = (
        ("ok", ("ok", "redirected")),
        ("blocked", ("blocked",)),
        ("failing", ("failing",)),
        ("dead", ("dead",)),
    )
    width, height, left, top, bottom = 720, 200, 44, 12, 28
    plot_w, plot_h = width - left - 8, height - top - bottom
    peak = max(
        [sum(int((r.get("totals") or {}).get(k) or 0) for _, ks in layers for k in ks) for r in runs] + [1]
    )
    peak += peak % 2  # an even top keeps the middle grid line on a whole number
    slot = plot_w / max(len(runs), 1)
    bar_w = max(min(slot * 0.7, 28), 2)
    label_every = max(1, round(len(runs) / 8))
    bars = []
    for index, item in enumerate(runs):
        totals = item.get("totals") or {}
        x = left + index * slot + (slot - bar_w) / 2
        y = float(top + plot_h)
        segments = []
        for name, keys in layers:
            count = sum(int(totals.get(k) or 0) for k in keys)
            h = plot_h * count / peak
            y -= h
            if count:
                segments.append({"layer": name, "y": round(y, 1), "h": round(h, 1), "count": count})
        tip = ", ".join(f"{n} {sum(int(totals.get(k) or 0) for k in ks)}" for n, ks in layers)
        bars.append(
            {
                "x": round(x, 1),
                "w": round(bar_w, 1),
                "segments": segments,
                "current": item.get("id") == run.id,
                "outage": bool(item.get("outage")),
                "incomplete": run_kind(item) != "complete",
                "title": f"{item.get('id')} — {_when(item.get('started_at'))}: {tip}"
                + (" (outage: nothing recorded)" if item.get("outage") else "")
                + (f" ({_KIND_NOTES[run_kind(item)]})" if run_kind(item) != "complete" else ""),
                "label": _day(item.get("started_at"))[5:]
                if (len(runs) - 1 - index) % label_every == 0
                else "",
                "cx": round(x + bar_w / 2, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "base": top + plot_h,
        "peak": peak,
        "mid_y": round(top + plot_h / 2, 1),
        "right": width - 8,
        "bars": bars,
        "runs": len(runs),
    }


Summary = tuple[_Sections, Shown[LinkRow], list[dict[str, Any]]]


def _summary(links: Iterable[LinkRow], politeness: tuple[HostStats, ...] = ()) -> Summary:
    """One pass over the links: the sections, the first rows of "All links" and the per-host table."""
    summariser = Summariser(politeness)
    for link in links:
        summariser.add(link)
    return summariser.summary()


def summarise(report: RunReport) -> Summary:
    """What report.md and report.html show of the links (one pass over them, shared by both)."""
    return _summary(report.links, report.politeness)


def _view(
    report: RunReport, trend: list[dict[str, Any]] | None, summary: Summary | None = None
) -> dict[str, Any]:
    sections, links, hosts = summary or summarise(report)
    return {
        "report": report,
        "run": report.run,
        "totals": report.totals,
        "sections": sections,
        "links": links,
        "changes": _first(report.changes),
        "errors": report.errors,
        "discovered": _first(report.discovered),
        "refused_pages": report.refused_pages,
        "hosts": hosts,
        "trend": _trend(report, trend) if trend is not None else None,
        "exit_label": _exit_label(report.run.exit_code),
        "kind_note": _KIND_NOTES.get(report.run.kind, ""),
        "statuses": STATUSES,
        "max_articles": _MAX_ARTICLES_SHOWN,
    }


def _exit_label(code: Any) -> str:
    try:
        return ExitCode(code).label
    except ValueError:
        return "unknown"
