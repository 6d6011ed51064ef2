"""A cron line -> an APScheduler CronTrigger, with standard cron's weekday numbering.

Reads: ``schedule.cron``, ``schedule.timezone``, ``schedule.jitter``. Returns: a trigger, or raises
``ValueError`` naming the key. Used by config (to validate at load) and by the scheduler (to run), so
neither imports the other.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:  # config imports this module to validate the cron line at load
    from pipeline.config import ScheduleSettings

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # standard cron numbering: 0 and 7 are Sunday


_DOW_ITEM = re.compile(r"^(?P<range>\*|(?P<lo>\w+)(?:-(?P<hi>\w+))?)(?:/(?P<step>\d+))?$")


def _day_number(token: str, field: str) -> int:
    token = token.lower()
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    if token[:3] in _DAY_NAMES and len(token) == 3:
        return _DAY_NAMES.index(token)
    raise ValueError(f"schedule.cron: day of week {field!r}: {token!r} is not 0-7 or a day name (sun-sat)")


def _day_of_week(field: str) -> str:
    """Standard-crontab day of week (0-7, Sunday is 0 and 7, names, ranges, steps) -> APScheduler names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        match = _DOW_ITEM.match(item)
        if match is None:
            raise ValueError(f"schedule.cron: day of week {field!r}: cannot read {item!r}")
        step = int(match["step"] or 1)
        if step < 1:
            raise ValueError(f"schedule.cron: day of week {field!r}: step must be at least 1")
        if match["range"] == "*":
            lo, hi = 0, 6
        else:
            lo = _day_number(match["lo"], field)
            hi_token = match["hi"]
            # `7` as the top of a range means Sunday at the end of the week (`5-7` = fri,sat,sun).
            hi = (7 if hi_token == "7" else _day_number(hi_token, field)) if hi_token else lo
            if match["step"] and not hi_token:
                hi = 6
            if hi < lo:
                raise ValueError(f"schedule.cron: day of week {field!r}: range {item!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    # APScheduler weeks start on Monday; list the days in its order for readable logs.
    return ",".join(_DAY_NAMES[d] for d in sorted(days, key=lambda d: (d + 6) % 7))


def build_trigger(schedule: ScheduleSettings) -> CronTrigger:
    """The CronTrigger for ``schedule.cron`` in ``schedule.timezone``, with ``schedule.jitter`` seconds.

    Raises ``ValueError`` naming ``schedule.cron`` or ``schedule.timezone`` when they cannot be used.
    Day of month and day of week both restricted is refused: standard cron runs when *either* matches,
    APScheduler only when *both* do, and silently picking one meaning would surprise someone.
    """
    minute, hour, day, month, dow = schedule.cron.split()
    if day not in ("*", "?") and dow not in ("*", "?"):
        raise ValueError(
            f"schedule.cron: {schedule.cron!r} restricts both day of month and day of week; cron would run on"
            " either, this scheduler only on both: keep one of them '*'"
        )
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_day_of_week(dow),
            timezone=schedule.timezone,
            jitter=schedule.jitter or None,
        )
    except KeyError as exc:  # zoneinfo.ZoneInfoNotFoundError
        raise ValueError(f"schedule.timezone: {schedule.timezone!r} is not a known time zone") from exc
    except ValueError as exc:
        raise ValueError(f"schedule.cron: {schedule.cron!r}: {exc}") from exc
