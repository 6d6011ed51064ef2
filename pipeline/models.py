"""The records that flow between stages; no I/O.

Data flows one way: ``Article -> LinkRef -> Observation -> LinkResult -> PageMeta -> Change -> report``.
Records are frozen dataclasses; times are timezone-aware UTC; no httpx object crosses a stage boundary.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pipeline.hostkey import HostKey as HostKey  # where the stages have always found them
from pipeline.hostkey import host_key as host_key

FieldPath = tuple[str | int, ...]  # ("related", 2, "images", 0, "url")
Validators = tuple[str | None, str | None]  # a stored page's (ETag, Last-Modified)


def format_field_path(path: FieldPath) -> str:
    """``("related", 2, "webUrl")`` -> ``related[2].webUrl`` (the empty path: ``""``).

    The one field-path formatter: a path travels as a tuple and is formatted only for people and files.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def field_spec(path: FieldPath) -> str:
    """The configured-field form of a path, indexes as ``[]``: ``("a", 0, "url")`` -> ``a[].url``."""
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in the README. 2 is left to click for usage errors."""

    OK = 0  # the run completed; every file was read (dead links are data, not failure)
    FILES_FAILED = 1  # the run completed, but some files failed (or `validate` found problems)
    CONFIG_ERROR = 3  # the configuration is invalid; nothing was done
    LOCKED = 4  # another run holds the lock; nothing was done
    INTERRUPTED = 5  # stopped by SIGTERM/SIGINT after finishing the file being written
    PATH_UNUSABLE = 6  # a state/history/reports path cannot be used (permission, read-only database)
    OUTAGE_STREAK = 7  # the network has been down for health.outage.max_consecutive runs in a row
    FAIL_ON = 8  # `--fail-on` matched: links with the named statuses exist (CI)
    ENGINE_UNAVAILABLE = 9  # executor: celery: the broker or the workers did not answer in time

    @property
    def label(self) -> str:
        """What the code means, for the report's run line."""
        return _EXIT_LABELS.get(self, "unknown")


_EXIT_LABELS = {
    ExitCode.OK: "ok",
    ExitCode.FILES_FAILED: "some files failed",
    ExitCode.CONFIG_ERROR: "configuration error",
    ExitCode.LOCKED: "locked",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.PATH_UNUSABLE: "a state or reports path cannot be used",
    ExitCode.OUTAGE_STREAK: "network down for several runs",
    ExitCode.ENGINE_UNAVAILABLE: "engine unavailable",
}


class LinkStatus(enum.StrEnum):
    """The verdict a maintainer reads for one URL."""

    OK = "ok"
    REDIRECTED = "redirected"  # alive, but the server points permanently to a newer URL
    FAILING = "failing"  # failed now; not yet enough evidence to call it dead
    DEAD = "dead"  # failed on enough separate runs over enough days, with no success between
    BLOCKED = "blocked"  # the site refused us (401/403/429/999/challenge): health unknown, never dead
    INVALID = "invalid"  # not a URL we can check; never requested
    SKIPPED = "skipped"  # excluded by config or the address guard, or not due for a recheck; never requested


# The one meaning of "alive": the link answered (maybe at a new address). Every module asks these two.
ALIVE = frozenset({LinkStatus.OK, LinkStatus.REDIRECTED})  # verdicts


STATUSES = tuple(str(status) for status in LinkStatus)  # the report's order: every list and table uses it


class Outcome(enum.StrEnum):
    """What one request (with its retries) showed in this run, before history is consulted."""

    SUCCESS = "success"  # 2xx, after at most the allowed redirects
    MOVED = "moved"  # 2xx reached through a permanent (301/308) redirect
    HARD = "hard"  # 404, 410, a redirect to a 404, a domain that does not resolve
    SOFT = "soft"  # 5xx, timeout, reset, refused, TLS error, redirect loop (after retries)
    BLOCKED = "blocked"  # 401, 403, 429 after retries, 999, a Cloudflare challenge
    SKIPPED = "skipped"  # refused by the address guard or excluded: never requested


@dataclass(frozen=True, slots=True)
class LinkRef:
    """One URL named by one article, at one field path such as ``related[2].ampWebUrl``."""

    article: Path
    field_path: str
    url: str  # exactly as written in the article
    normalized: str | None  # the URL we request; None when the reference is invalid
    invalid_reason: str = ""  # why it is invalid, for people
    line: int | None = None  # file line (1-based) of the field's key, for CI annotations (SARIF)
    path: FieldPath = ()  # the field path as a value; ``field_path`` is its text, for people and files


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """The first bytes of a body fetched during the link check: a page's head, or an image's header."""

    url: str
    final_url: str
    content_type: str
    headers: dict[str, str]  # lower-cased names
    body: bytes  # capped: only the head of a large page


ANSWERED = frozenset({Outcome.SUCCESS, Outcome.MOVED})  # observations of this run


@dataclass(frozen=True, slots=True)
class Observation:
    """Outcome of requesting one unique URL in this run (many articles may share it)."""

    url: str
    outcome: Outcome
    http_status: int | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()  # every hop after the first request, in order
    reason: str = ""  # for people; never parse it
    network_level: bool = False  # failed below HTTP (DNS, connect, reset, timeout, TLS): outage evidence
    host: str = ""
    elapsed: float = 0.0  # seconds, for the report
    page: FetchedPage | None = None  # only when the body was asked for (fetch_body) and the answer was 2xx


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The verdict for one unique URL after this run's observation and its history."""

    url: str
    status: LinkStatus
    http_status: int | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    reason: str = ""
    first_failed_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    checked_at: datetime | None = None  # when this verdict's evidence was gathered (may be an earlier run)
    failure_kind: str | None = None  # "hard" when every failure of the streak was hard, else "soft"


@dataclass(frozen=True, slots=True)
class ImageMeta:
    """An image a page declares (or one the article names), with what is known about it."""

    url: str
    width: int | None = None
    height: int | None = None
    alt: str | None = None
    type: str | None = None  # MIME type


@dataclass(frozen=True, slots=True)
class PageMeta:
    """Metadata a page declares about itself; every field optional."""

    url: str  # the final URL the page was read from
    title: str | None = None
    description: str | None = None
    images: tuple[ImageMeta, ...] = ()  # best share image first
    canonical: str | None = None
    amp: str | None = None
    site_name: str | None = None
    published: str | None = None  # as the page wrote it (ISO 8601 usually)
    sources: dict[str, str] = field(default_factory=dict)  # field -> the source that supplied it (og, …)


@dataclass(frozen=True, slots=True)
class ImageProbe:
    """What a request for an image showed: alive, an image, and its real pixel size."""

    url: str
    alive: bool
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """One field of one article that the run changed (or would change, with --dry-run)."""

    article: str
    field_path: str
    old: object
    new: object
    source: str  # the URL the new value came from, or "link-health"
    via: str = ""  # which part of the page supplied it: og, twitter, json-ld, meta, dc, body (a fallback) …


@dataclass(frozen=True, slots=True)
class FileError:
    """A file that could not be read, parsed or written; the run went on without it."""

    article: str
    message: str


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A page's metadata as last read, with its validators; what a run applies without a new request."""

    url: str  # the URL as requested (normalized)
    final_url: str
    read_at: datetime
    description: str | None = None
    description_source: str | None = None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_alive: bool | None = None  # None: the share image was not probed yet
    image_source: str | None = None
    canonical: str | None = None
    amp: str | None = None
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_meta(
        cls, url: str, meta: PageMeta, read_at: datetime, etag: str | None, last_modified: str | None
    ) -> StoredPage:
        """What is kept of a page just read: its share image (first), not yet probed."""
        image = meta.images[0] if meta.images else None
        return cls(
            url=url,
            final_url=meta.url,
            read_at=read_at,
            description=meta.description,
            description_source=meta.sources.get("description"),
            image_url=image.url if image else None,
            image_source=meta.sources.get("image") if image else None,
            canonical=meta.canonical,
            amp=meta.amp,
            title=meta.title,
            etag=etag,
            last_modified=last_modified,
        )

    def to_meta(self) -> PageMeta:
        """The page's metadata as a run uses it (share image with its probed size, if probed)."""
        sources = {
            name: source
            for name, source in (("description", self.description_source), ("image", self.image_source))
            if source
        }
        images = (ImageMeta(self.image_url, self.image_width, self.image_height),) if self.image_url else ()
        return PageMeta(
            url=self.final_url,
            title=self.title,
            description=self.description,
            images=images,
            canonical=self.canonical,
            amp=self.amp,
            sources=sources,
        )

    def share_probe(self) -> ImageProbe | None:
        """The stored probe of the share image, when it was probed."""
        if self.image_url is None or self.image_alive is None:
            return None
        return ImageProbe(self.image_url, self.image_alive, width=self.image_width, height=self.image_height)


@dataclass(frozen=True, slots=True)
class UrlHistory:
    """One URL's stored history, as ``health.history.HistoryStore.load`` returns it."""

    url: str
    status: LinkStatus
    first_failed_at: datetime | None = None  # start of the current failure streak
    last_success_at: datetime | None = None
    last_checked_at: datetime | None = None  # when it was last requested
    consecutive_failures: int = 0  # failing runs in the current streak
    failure_kind: str | None = None  # "hard" when every failure of the streak was hard, else "soft"
    http_status: int | None = None
    final_url: str | None = None
    reason: str = ""
    redirects: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # the last statuses, oldest first


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the archive said about one link."""

    url: str  # the link (normalized)
    archive_url: str | None  # the copy; None: the archive has none
    timestamp: str | None  # when the copy was taken, YYYYMMDDhhmmss
    checked_at: datetime  # when we asked


@dataclass(frozen=True, slots=True)
class SetValue:
    """Set a scalar or a whole mapping/list subtree at ``path``; a missing last key is created."""

    path: FieldPath
    value: Any


@dataclass(frozen=True, slots=True)
class Append:
    """Append an item to the existing list at ``path``."""

    path: FieldPath
    value: Any


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove the mapping key or list item at ``path`` (a missing key is a no-op)."""

    path: FieldPath


Edit = SetValue | Append | Remove


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the run learned, keyed by normalized URL."""

    results: Mapping[str, LinkResult]
    pages: Mapping[str, PageMeta] = field(default_factory=dict)  # usable pages only
    probes: Mapping[str, ImageProbe] = field(default_factory=dict)
    outage: bool = False
    archive: Mapping[str, str] = field(default_factory=dict)  # dead URL -> its archive copy


Mode = Literal["refresh", "check-only"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (injected in tests as a fake clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How this run differs from a plain nightly refresh."""

    mode: Mode = "refresh"
    dry_run: bool = False  # print the plan and the diffs; write no article, history or report
    force: bool = False  # recheck URLs whose `ok` verdict is still fresh
    now: Callable[[], datetime] = utc_now
    stop: threading.Event = field(default_factory=threading.Event)
    show_progress: bool = True
    # Only some paths (PATH arguments) instead of the configured roots: not a night, never `latest`.
    partial: bool = False
    exclude: tuple[str, ...] = ()  # --exclude patterns, on top of the configured ones
    include: tuple[str, ...] = ()  # --include patterns: only matching URLs are checked
