"""Archive copies of dead links: the Internet Archive's availability API, asked politely, answers cached.

Reads settings ``health.archive`` (``enabled``, ``endpoint``, ``failing``, ``retry_none_after_days``,
``min_interval``, ``timeout``, ``max_lookups``), ``http.agent`` (User-Agent), ``http.ca_bundle`` /
``http.verify_tls`` and ``retry.retry_after_max``. Returns :class:`Snapshot` records: the closest copy of a
dead link taken before the citing article's ``publishedDateTime`` (or the latest copy, without a date), or
"none found". The runner keeps them in the history database (``HistoryStore.load_archive`` /
``record_archive``): a copy found is kept for good; "none found" is asked again after
``retry_none_after_days``.

Only links whose verdict is ``dead`` (and ``failing`` with ``failing: true``) are looked up, never a healthy
one. The archive asks for about one request per second and blocks clients that ignore its 429s, so requests
are spaced by ``min_interval``, a 429 is waited out (``Retry-After``, capped) and retried once, and a second
429, a server error or a network failure ends the lookups of this run (the rest wait for the next run).
The archive's answers never change a verdict: it only adds a copy beside a dead link.

Request: ``GET <endpoint>?url=<link>&timestamp=<YYYYMMDDhhmmss>&closest=before&statuscodes=200``.
Answer: ``{"archived_snapshots": {"closest": {"available": true, "url": …, "timestamp": …,
"status": "200"}}}``, or ``{"archived_snapshots": {}}`` when the archive holds no copy.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline.check.retry import parse_retry_after
from pipeline.config import ArchiveSettings, Settings
from pipeline.errors import ArchiveUnavailable
from pipeline.health.results import ResultTable
from pipeline.models import LinkResult, LinkStatus, Snapshot

log = logging.getLogger("pipeline")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_END_OF_DAY = datetime.max.time().replace(microsecond=0)  # 23:59:59


def candidates(results: Mapping[str, LinkResult], settings: ArchiveSettings) -> list[str]:
    """Links whose verdict asks for an archive copy: dead (and failing, when configured); sorted."""
    wanted = {LinkStatus.DEAD} | ({LinkStatus.FAILING} if settings.failing else set())
    if isinstance(results, ResultTable):  # the run's own verdicts: none decoded
        return sorted(results.with_status(wanted))
    return sorted(url for url, result in results.items() if result.status in wanted)


def copy_urls(copies: Mapping[str, Snapshot]) -> dict[str, str]:
    """Link -> its copy's URL, for the links that have one."""
    return {url: snap.archive_url for url, snap in copies.items() if snap.archive_url}


def is_due(cached: Snapshot | None, settings: ArchiveSettings, now: datetime) -> bool:
    """Whether to ask the archive: never asked, or "none found" long enough ago. A copy found is kept."""
    if cached is None:
        return True
    if cached.archive_url:
        return False
    return now - cached.checked_at >= timedelta(days=settings.retry_none_after_days)


def wayback_timestamp(published: Any) -> str | None:
    """Pure: an article's ``publishedDateTime`` (ISO 8601 text or a date) -> ``YYYYMMDDhhmmss``, or None.

    A date without a time stands for the end of that day."""
    if isinstance(published, datetime):
        moment = published
    elif isinstance(published, date):
        moment = datetime.combine(published, _END_OF_DAY)
    elif isinstance(published, str) and published.strip():
        text = published.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if _DATE_ONLY.fullmatch(text):
            # Published some time that day: a copy taken later the same day still shows the cited page.
            moment = datetime.combine(moment.date(), _END_OF_DAY)
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y%m%d%H%M%S}"


def parse_answer(data: Any) -> tuple[str | None, str | None]:
    """Pure: the availability API's JSON -> (copy URL, timestamp); (None, None) for "none found".

    Raises ``ValueError`` when the document is not the API's shape (then nothing is cached).
    """
    if not isinstance(data, dict) or not isinstance(data.get("archived_snapshots"), dict):
        raise ValueError("not an availability API answer (no archived_snapshots object)")
    closest = data["archived_snapshots"].get("closest")
    if closest is None:
        return None, None
    if not isinstance(closest, dict):
        raise ValueError("archived_snapshots.closest is not an object")
    url, stamp, status = closest.get("url"), closest.get("timestamp"), closest.get("status")
    if closest.get("available") is False or not isinstance(url, str) or not url.startswith("http"):
        return None, None
    if status is not None and str(status) != "200":
        return None, None  # asked for statuscodes=200; a copy of an error page is no copy
    # The API answers with http:// links to web.archive.org, which serves (and redirects to) https.
    if url.startswith("http://web.archive.org/"):
        url = "https://" + url.removeprefix("http://")
    return url, str(stamp) if stamp is not None else None


class ArchiveClient:
    """A synchronous client for the availability API with its own host limit (one request at a time)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._archive = settings.health.archive
        self._retry_after_max = settings.retry.retry_after_max
        import httpx  # here, not at the top: a run that asks the archive nothing never loads the HTTP stack

        verify: Any = str(settings.http.ca_bundle) if settings.http.ca_bundle else settings.http.verify_tls
        self._client = httpx.Client(
            headers={"User-Agent": settings.http.agent, "Accept": "application/json"},
            timeout=self._archive.timeout,
            verify=verify,
            follow_redirects=True,
            trust_env=False,
        )
        self._sleep, self._clock, self._stop = sleep, clock, stop
        self._last_start: float | None = None
        self.requests = 0

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _space(self) -> None:
        if self._last_start is not None:
            wait = self._last_start + self._archive.min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_start = self._clock()

    def ask(self, url: str, timestamp: str | None, now: datetime) -> Snapshot:
        """The closest copy of ``url`` (before ``timestamp`` when given); raises ArchiveUnavailable."""
        import httpx  # loaded by __init__ already

        params = {"url": url, "statuscodes": "200"}
        if timestamp:
            params.update(timestamp=timestamp, closest="before")
        for attempt in (1, 2):
            self._space()
            self.requests += 1
            try:
                response = self._client.get(self._archive.endpoint, params=params)
            except httpx.HTTPError as exc:
                raise ArchiveUnavailable(f"{type(exc).__name__}: {exc}") from None
            if response.status_code == 429:
                pause = parse_retry_after(response.headers.get("retry-after"))
                pause = min(
                    self._retry_after_max, pause if pause is not None else 10 * self._archive.min_interval
                )
                if attempt == 2:
                    raise ArchiveUnavailable("HTTP 429 twice: the archive asks us to slow down")
                log.info("archive answered 429; waiting %.1f s", pause)
                self._sleep(pause)
                if self._stop():
                    raise ArchiveUnavailable("stop requested")
                self._last_start = self._clock()
                continue
            if response.status_code != 200:
                raise ArchiveUnavailable(f"HTTP {response.status_code}")
            try:
                archive_url, stamp = parse_answer(response.json())
            except ValueError as exc:
                raise ArchiveUnavailable(str(exc)) from None
            return Snapshot(url, archive_url, stamp, now)
        raise AssertionError("unreachable")


def lookup(
    urls: Iterable[str],
    dates: Mapping[str, str],
    cached: Mapping[str, Snapshot],
    settings: Settings,
    now: datetime,
    client: ArchiveClient | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Snapshot], list[Snapshot]]:
    """Copies for ``urls``: (every copy known now, by URL; the answers got this run, to cache).

    ``dates`` holds the ``YYYYMMDDhhmmss`` of the citing article per URL. Cached copies are used as they
    are; at most ``max_lookups`` URLs are asked; the archive being unavailable ends the asking quietly.
    """
    archive = settings.health.archive
    wanted = list(urls)
    known = {url: cached[url] for url in wanted if url in cached and cached[url].archive_url}
    todo = [url for url in wanted if is_due(cached.get(url), archive, now)]
    fresh: list[Snapshot] = []
    if not todo or archive.max_lookups == 0:
        return known, fresh
    own = client is None
    client = client or ArchiveClient(settings)
    try:
        for url in todo[: archive.max_lookups]:
            if stop is not None and stop():
                break
            try:
                snapshot = client.ask(url, dates.get(url), now)
            except ArchiveUnavailable as exc:
                log.warning("archive lookups stopped for this run: %s (%s)", exc, archive.endpoint)
                break
            fresh.append(snapshot)
            if snapshot.archive_url:
                known[url] = snapshot
    finally:
        if own:
            client.close()
    if len(todo) > archive.max_lookups:
        log.info("archive: %d links wait for the next run (max_lookups)", len(todo) - archive.max_lookups)
    return known, fresh
