"""``ResultTable``: the run's verdicts by normalized URL, kept packed; a ``LinkResult`` made when read.

A run keeps every URL's verdict from the check pass to the end of the report (the decisions read it for
every article citing the URL, the report once per URL). As a ``LinkResult`` a verdict costs about 120 bytes,
and the URL string it holds is often a copy of the key (the observation's, unpickled from the check's
process). But a night's verdicts are mostly alike: everything but the URL and the final URL (status, HTTP
status, redirects, reason, the streak's dates and count, when it was checked) takes a few distinct
values, one per outcome and night. So each verdict is kept as the number of its "shape" (those fields)
among the distinct ones, with two bits saying whether its final URL is none, the URL itself, or another
one (kept beside it). A few dozen shapes make a number Python keeps as a shared small integer: a verdict
then costs its map entry alone.

Reads and writes: nothing but memory. Settings: none. Reading gives a ``LinkResult`` equal to the one
stored (its URL the key's string); a verdict whose URL is not its key, or that was redirected, is kept
as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime

from pipeline.models import LinkResult, LinkStatus
from pipeline.packed import PackedMap

# What a verdict holds besides its URL and final URL, in ``LinkResult``'s order.
_Shape = tuple[
    LinkStatus,
    int | None,
    tuple[str, ...],
    str,
    datetime | None,
    datetime | None,
    int,
    datetime | None,
    str | None,
]
_NO_FINAL, _FINAL_IS_URL, _FINAL_OTHER = 0, 1, 2


class ResultTable(PackedMap[LinkResult, int | LinkResult]):
    """Verdicts by normalized URL, each packed into the number of its shape; decoded when read."""

    def __init__(self) -> None:
        self._rows: dict[str, int | LinkResult] = {}
        self._finals: dict[str, str] = {}  # final URLs that are neither None nor the URL itself
        self._shapes: list[_Shape] = []
        self._numbers: dict[_Shape, int] = {}

    def __setitem__(self, url: str, result: LinkResult) -> None:
        self._finals.pop(url, None)
        # A redirected verdict's redirects and reason name its own targets: a shape of its own would cost
        # more than the verdict held whole.
        if result.url != url or result.redirects:
            self._rows[url] = result
            return
        shape: _Shape = (
            result.status,
            result.http_status,
            result.redirects,
            result.reason,
            result.first_failed_at,
            result.last_success_at,
            result.consecutive_failures,
            result.checked_at,
            result.failure_kind,
        )
        number = self._numbers.get(shape)
        if number is None:
            number = self._numbers[shape] = len(self._shapes)
            self._shapes.append(shape)
        final = result.final_url
        if final is None:
            kind = _NO_FINAL
        elif final == url:
            kind = _FINAL_IS_URL
        else:
            kind = _FINAL_OTHER
            self._finals[url] = final
        self._rows[url] = number << 2 | kind

    def __getitem__(self, url: str) -> LinkResult:
        row = self._rows[url]
        if isinstance(row, LinkResult):
            return row
        kind = row & 3
        final = None if kind == _NO_FINAL else url if kind == _FINAL_IS_URL else self._finals[url]
        status, http_status, redirects, reason, first, success, failures, checked, failure_kind = (
            self._shapes[row >> 2]
        )
        return LinkResult(
            url,
            status,
            http_status,
            final,
            redirects,
            reason,
            first,
            success,
            failures,
            checked,
            failure_kind,
        )

    def statuses(self) -> set[LinkStatus]:
        """The statuses of the verdicts, known without decoding any (a shape no verdict holds any longer,
        one replaced or deleted, may still name its status)."""
        found = {shape[0] for shape in self._shapes}
        found.update(row.status for row in self._rows.values() if isinstance(row, LinkResult))
        return found

    def with_status(self, wanted: Collection[LinkStatus]) -> Iterator[str]:
        """The URLs whose verdict has one of the ``wanted`` statuses, found without decoding a verdict
        (a scan of every verdict, as the archive's candidates are picked each night)."""
        numbers = {number for number, shape in enumerate(self._shapes) if shape[0] in wanted}
        for url, row in self._rows.items():
            if row.status in wanted if isinstance(row, LinkResult) else row >> 2 in numbers:
                yield url

    @property
    def shapes(self) -> int:
        """How many distinct shapes the verdicts stored so far have."""
        return len(self._shapes)

    def __delitem__(self, url: str) -> None:
        del self._rows[url]
        self._finals.pop(url, None)
