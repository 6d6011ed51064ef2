"""The run report as a record: ``RunReport`` and its parts, and the per-host politeness figures.

Built once by ``report.build``; report.json is ``RunReport.to_json()`` (schema: ``report/schema.json``),
and a stored report (the history keeps that JSON) comes back with ``RunReport.from_json``. The JSON,
Markdown, HTML and CI formats, the summary line and ``pipeline report``/``runs`` all read this record.

``from_json`` reads reports written by every earlier version: keys added later (``kind``,
``outage_streak``, ``checked``, ``temp_files_removed``, ``not_modified``, a link's ``host`` and
``lines``, ``archive``, ``discovered``, ``refused_pages``, ``politeness``) take the meaning the schema
gives their absence. Values are copied as they are (a report is data for people, never re-judged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

from pipeline.models import STATUSES

SCHEMA_VERSION = 1
KINDS = ("complete", "partial", "interrupted")


def _absent(data: Mapping[str, Any], optional: tuple[str, ...]) -> frozenset[str]:
    """The optional keys a stored document lacks: written back without them, the JSON stays the same."""
    return frozenset(key for key in optional if key not in data)


def _without(out: dict[str, Any], absent: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in out.items() if key not in absent} if absent else out


def _keys_absent() -> Any:
    return field(default=frozenset(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HostStats:
    """What the check's per-host controller did to one host in a run (the report's per-host table).

    ``host`` is the check's key (``host:port``); the report names hosts as its links do (``report_host``).
    """

    host: str
    got_429: int
    got_503: int
    pauses: int
    paused_seconds: float
    lowest_concurrency: int
    not_modified: int

    @property
    def report_host(self) -> str:
        """The host as the report's links name it (a default port left out)."""
        return self.host.removesuffix(":80").removesuffix(":443")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostStats:
        return cls(data["host"], *(data[name] for name in POLITENESS_FIELDS))


POLITENESS_FIELDS = ("got_429", "got_503", "pauses", "paused_seconds", "lowest_concurrency", "not_modified")


@dataclass(frozen=True, slots=True)
class ArchiveCopy:
    """An archive's copy of a dead link (``timestamp``: when it was taken, YYYYMMDDhhmmss)."""

    url: str
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class LinkPlace:
    """Where one URL is written: an article, its field paths and their front-matter lines."""

    article: str
    field_paths: tuple[str, ...]
    lines: tuple[int | None, ...]
    absent: frozenset[str] = _keys_absent()

    def to_json(self) -> dict[str, Any]:
        out = {"article": self.article, "field_paths": list(self.field_paths), "lines": list(self.lines)}
        return _without(out, self.absent)


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One unique URL of the run and its verdict."""

    url: str
    status: str
    http_status: int | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    reason: str = ""
    host: str = ""
    previous_status: str | None = None
    first_failed_at: str | None = None
    last_success_at: str | None = None
    consecutive_failures: int = 0
    checked_at: str | None = None
    articles: tuple[LinkPlace, ...] = ()
    archive: ArchiveCopy | None = None
    absent: frozenset[str] = _keys_absent()

    def to_json(self) -> dict[str, Any]:
        out = {
            "url": self.url,
            "status": self.status,
            "http_status": self.http_status,
            "final_url": self.final_url,
            "redirects": list(self.redirects),
            "reason": self.reason,
            "host": self.host,
            "previous_status": self.previous_status,
            "first_failed_at": self.first_failed_at,
            "last_success_at": self.last_success_at,
            "consecutive_failures": self.consecutive_failures,
            "checked_at": self.checked_at,
            "articles": [place.to_json() for place in self.articles],
            "archive": None
            if self.archive is None
            else {"url": self.archive.url, "timestamp": self.archive.timestamp},
        }
        return _without(out, self.absent)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinkRow:
        places = []
        for entry in data.get("articles") or []:
            paths = tuple(entry.get("field_paths") or ())
            lines = tuple(entry.get("lines") or (None,) * len(paths))
            places.append(LinkPlace(entry["article"], paths, lines, _absent(entry, ("lines",))))
        archive = data.get("archive")
        return cls(
            url=data["url"],
            status=data["status"],
            http_status=data.get("http_status"),
            final_url=data.get("final_url"),
            redirects=tuple(data.get("redirects") or ()),
            reason=data.get("reason") or "",
            host=str(data["host"] or "") if "host" in data else _hostname(data["url"]),
            previous_status=data.get("previous_status"),
            first_failed_at=data.get("first_failed_at"),
            last_success_at=data.get("last_success_at"),
            consecutive_failures=data.get("consecutive_failures") or 0,
            checked_at=data.get("checked_at"),
            articles=tuple(places),
            archive=ArchiveCopy(archive["url"], archive.get("timestamp")) if archive else None,
            absent=_absent(data, ("host", "archive")),
        )


def _hostname(url: str) -> str:
    """A report written before links named their host: the URL's host name."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One front-matter field changed (or found: a canonical/AMP URL) in the run."""

    article: str
    field_path: str
    old: Any
    new: Any
    source: str
    via: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "article": self.article,
            "field_path": self.field_path,
            "old": self.old,
            "new": self.new,
            "source": self.source,
        }
        return {**out, "via": self.via} if self.via else out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChangeRow:
        return cls(
            data["article"],
            data["field_path"],
            data.get("old"),
            data.get("new"),
            data["source"],
            data.get("via"),
        )


# Rows are pickled (by the report's spool) as their constructor's arguments: quicker than dataclass state
# (every row has two fields or more, so ``attrgetter`` gives them as a tuple).
for _row in (ArchiveCopy, LinkPlace, LinkRow, ChangeRow):
    _row.__reduce__ = lambda row, fields=attrgetter(*_row.__slots__): (type(row), fields(row))  # type: ignore


@dataclass(frozen=True, slots=True)
class RefusedPage:
    """A page whose metadata was not used, and why."""

    url: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class FileErrorRow:
    """A file that could not be read, parsed or written (``article``, ``message``: printable text)."""

    article: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"article": self.article, "message": self.message}


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts for the run (URL counts over unique URLs); ``checked`` is None in reports that lack it."""

    articles: int
    files_failed: int
    urls: int
    by_status: Mapping[str, int]  # every status of STATUSES, 0 when none
    changes: int
    temp_files_removed: int
    newly_dead: int
    recovered: int
    not_modified: int = 0
    checked: int | None = None
    absent: frozenset[str] = _keys_absent()

    def __getattr__(self, name: str) -> int:
        # `totals.dead`: the statuses read as attributes too (templates, the summary line).
        try:
            return self.by_status[name]
        except KeyError:
            raise AttributeError(name) from None

    def count(self, status: str) -> int:
        return int(self.by_status.get(status, 0))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "articles": self.articles,
            "files_failed": self.files_failed,
            "urls": self.urls,
        }
        out.update(self.by_status)
        out.update(
            changes=self.changes,
            temp_files_removed=self.temp_files_removed,
            newly_dead=self.newly_dead,
            recovered=self.recovered,
            not_modified=self.not_modified,
        )
        if self.checked is not None:
            out["checked"] = self.checked
        return _without(out, self.absent)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        return cls(
            articles=data.get("articles", 0),
            files_failed=data.get("files_failed", 0),
            urls=data.get("urls", 0),
            by_status={s: data.get(s, 0) for s in STATUSES},
            changes=data.get("changes", 0),
            temp_files_removed=data.get("temp_files_removed", 0),
            newly_dead=data.get("newly_dead", 0),
            recovered=data.get("recovered", 0),
            not_modified=data.get("not_modified", 0),
            checked=data.get("checked"),
            absent=_absent(data, ("temp_files_removed", "not_modified")),
        )


@dataclass(frozen=True, slots=True)
class OutageStreak:
    """An outage run: the complete runs in a row (this one included) that were outages, since when."""

    runs: int  # at least 1: this run
    since: str  # RFC 3339


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run a report describes; ``config`` is the settings summary (free-form, for people)."""

    id: str
    started_at: str
    finished_at: str
    duration_seconds: float
    exit_code: int
    mode: str
    outage: str | None
    config: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "complete"
    outage_streak: OutageStreak | None = None
    absent: frozenset[str] = _keys_absent()

    def to_json(self) -> dict[str, Any]:
        streak = self.outage_streak
        out = {
            "id": self.id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "outage": self.outage,
            "config": dict(self.config),
            "kind": self.kind,
            "outage_streak": None if streak is None else {"runs": streak.runs, "since": streak.since},
        }
        return _without(out, self.absent)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunInfo:
        streak = data.get("outage_streak")
        kind = data.get("kind")
        return cls(
            id=data["id"],
            started_at=data["started_at"],
            finished_at=data.get("finished_at") or data["started_at"],
            duration_seconds=data.get("duration_seconds", 0),
            exit_code=data["exit_code"],
            mode=data.get("mode", "refresh"),
            outage=data.get("outage"),
            config=data.get("config") or {},
            kind=kind if isinstance(kind, str) and kind in KINDS else "complete",
            outage_streak=OutageStreak(streak["runs"], streak["since"]) if streak else None,
            absent=_absent(data, ("kind", "outage_streak")),
        )


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything one run reports: the run, its totals, each unique URL, changes, file errors, hosts."""

    run: RunInfo
    totals: Totals
    # A built report gives its rows from a ``Spool`` (a temporary file), a stored one from tuples.
    links: Sequence[LinkRow]
    changes: Sequence[ChangeRow] = ()
    discovered: Sequence[ChangeRow] = ()
    refused_pages: tuple[RefusedPage, ...] = ()
    errors: tuple[FileErrorRow, ...] = ()
    politeness: tuple[HostStats, ...] = ()  # hosts named as the links name them
    schema_version: int = SCHEMA_VERSION
    absent: frozenset[str] = _keys_absent()

    def with_exit_code(self, code: int) -> RunReport:
        """The same report with the run's exit code corrected (the report files could not be written)."""
        return replace(self, run=replace(self.run, exit_code=code))

    def to_json(self) -> dict[str, Any]:
        """The report.json document (``report/schema.json``)."""
        out = {
            "schema_version": self.schema_version,
            "run": self.run.to_json(),
            "totals": self.totals.to_json(),
            "links": [link.to_json() for link in self.links],
            "changes": [change.to_json() for change in self.changes],
            "discovered": [change.to_json() for change in self.discovered],
            "refused_pages": [page.to_json() for page in self.refused_pages],
            "errors": [error.to_json() for error in self.errors],
            "politeness": [host.to_json() for host in self.politeness],
        }
        return _without(out, self.absent)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunReport:
        """A report from its JSON (report.json or the history's copy), of this or any earlier version."""
        return cls(
            run=RunInfo.from_json(data["run"]),
            totals=Totals.from_json(data.get("totals") or {}),
            links=tuple(LinkRow.from_json(link) for link in data.get("links") or ()),
            changes=tuple(ChangeRow.from_json(c) for c in data.get("changes") or ()),
            discovered=tuple(ChangeRow.from_json(c) for c in data.get("discovered") or ()),
            refused_pages=tuple(RefusedPage(r["url"], r["reason"]) for r in data.get("refused_pages") or ()),
            errors=tuple(FileErrorRow(e["article"], e["message"]) for e in data.get("errors") or ()),
            politeness=tuple(HostStats.from_json(row) for row in data.get("politeness") or ()),
            schema_version=data.get("schema_version", SCHEMA_VERSION),
            absent=_absent(data, ("discovered", "refused_pages", "politeness")),
        )
