"""Pure retry decisions: the outcome of an HTTP status, whether to try again, how long to wait.

Reads: a status code, a ``Retry-After`` value, the attempt number and settings ``retry.*`` (passed in).
Returns: plain values; no I/O, no clock but the one passed in.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from pipeline.models import Outcome


def outcome_for_status(status: int, challenged: bool = False) -> tuple[Outcome, bool]:
    """Pure: the outcome of a final HTTP status, and whether it is worth a retry."""
    if challenged:
        return Outcome.BLOCKED, False
    if 200 <= status < 300:
        return Outcome.SUCCESS, False
    if status in (404, 410):
        return Outcome.HARD, False
    if status == 429:
        return Outcome.BLOCKED, True
    if status in (401, 403, 999):
        return Outcome.BLOCKED, False
    if status == 408 or 500 <= status < 600:
        return Outcome.SOFT, True
    return Outcome.SOFT, False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Pure: seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to Python, not to float()
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
