"""Report rows of answered URLs, made while the check still runs: :class:`EarlyLinks`.

Why: the parent process is idle while its check's process asks the URLs, and after the last answer a run
spent about a third of its tail on ``pipeline bench --check-only``'s 5,000 links building their report rows
and encoding them as report.json lines. An answered URL (``ok`` or ``redirected``) has its verdict as soon
as it is staged (``health.staging``), all but the moment the checks end, which fills its ``last_success_at``
and ``checked_at``. So its row is made then, with the text of ``staging.STAGED_AT`` for that moment, and its
line encoded; ``build_report`` takes both when the URL's final verdict is the staged one with the run's
time, and writes the time in. Any other URL (a failure, a later answer replacing the staged one, an archive
copy found at the end) gets its row the ordinary way, so the report is the one it would have been.

Only for a run of at most ``EARLY_ROWS`` articles and URLs, and rows of at most that many places in all: the
report's spool holds that much as it is anyway, while a large corpus would hold a row and a line per URL
(and the index of its citations) through its whole check, above the memory it is allowed per article.

Reads: the run's refs (after the read pass), its stored verdicts, each staged verdict. Settings: none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pipeline.health.staging import STAGED_AT
from pipeline.models import LinkRef, LinkResult, LinkStatus
from pipeline.report.build import index_of, places_of, report_row
from pipeline.report.files import encode_row
from pipeline.runreport import LinkRow
from pipeline.text import iso

# The articles and URLs of a run whose rows may be made early, and the places those rows may hold: what a
# report's spool holds as it is (``spool._IN_MEMORY``), so no run holds more rows than its report would.
EARLY_ROWS = 8192
STAGED_TEXT = iso(STAGED_AT) or ""


class EarlyLinks:
    """The report rows (and report.json lines) of the answered URLs, made as their verdicts are staged.

    ``STAGED_TEXT`` is the moment the staged verdicts were judged with (``health.staging``): no check ends
    then, so its text in a row or a line can only be the run's time to come.
    """

    def __init__(self, refs: Mapping[Path, Sequence[LinkRef]], previous: Mapping[str, LinkStatus]):
        self.index = index_of(refs)  # the report's own, made now instead of after the last answer
        self._previous = previous
        self._staged_text = STAGED_TEXT
        self._made: dict[str, tuple[LinkResult, LinkRow, str]] = {}  # URL -> staged verdict, its row, line
        self.lines: dict[str, str] = {}  # URL -> report.json line of each row taken (``stored_copy``)
        self._now: tuple[datetime, str] | None = None  # the run's time, and its text
        self._weight = 0  # the places of the rows made

    def __call__(self, result: LinkResult) -> None:
        """A staged verdict (``EarlyRows``): its row and line, for a URL the report lists, while the rows
        made weigh less than ``EARLY_ROWS`` places (the spool's weighing: a URL every article cites is
        never held whole)."""
        names, spots, index, _ = self.index
        places = index.get(result.url)
        if places is None or result.url in self._made:
            return  # a URL asked only to judge the network, or staged again (``take`` compares verdicts)
        if self._weight + len(places) > EARLY_ROWS:
            return
        self._weight += len(places)
        row = report_row(
            result.url, result, self._previous.get(result.url), places_of(places, names, spots), None
        )
        line = encode_row(row)
        # The moment's text stands for the run's time only where the two time fields hold it.
        if line.count(self._staged_text) == 2 and row.checked_at == row.last_success_at == self._staged_text:
            self._made[result.url] = (result, row, line)

    def take(self, url: str, result: LinkResult) -> LinkRow | None:
        """The row made early for ``url``, with the run's time, when ``result`` is its staged verdict
        judged at that time; else None (the report makes the row)."""
        made = self._made.pop(url, None)
        if made is None or result.checked_at is None or result.last_success_at != result.checked_at:
            return None
        staged, row, line = made
        if untimed(result) != untimed(staged):
            return None
        if self._now is None or self._now[0] != result.checked_at:
            self._now = (result.checked_at, iso(result.checked_at) or "")
        now = self._now[1]
        self.lines[url] = line.replace(self._staged_text, now)
        return dataclasses.replace(row, last_success_at=now, checked_at=now)


def untimed(result: LinkResult) -> tuple[object, ...]:
    """A verdict's fields but its URL and its two times (the moment the checks ended)."""
    return (
        result.status,
        result.http_status,
        result.final_url,
        result.redirects,
        result.reason,
        result.first_failed_at,
        result.consecutive_failures,
        result.failure_kind,
    )
