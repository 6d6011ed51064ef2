"""The daemon behind ``pipeline schedule``: runs a refresh on a cron expression, one run at a time.

Reads: ``settings.schedule`` (``cron``, ``timezone``, ``misfire_grace_time``, ``jitter``). Returns: an exit
code once SIGTERM or SIGINT has stopped it (or its trigger will never fire again).

Facts about APScheduler 3.11 that shape this module:
- ``CronTrigger.from_crontab`` counts numeric weekdays from Monday (``0`` is Monday; its docstring calls this
  "a historical mistake" kept for compatibility in 3.x) and takes no jitter, so
  ``build_trigger`` parses the five fields itself and turns a numeric day-of-week into names;
- ``misfire_grace_time`` defaults to 1 s (a run due just before a restart would be skipped silently), so the
  setting is always passed;
- it installs no signal handlers: ``serve`` installs its own and restores the previous ones on return.

The scheduler runs in a background thread while the main thread waits for a signal; the handler only sets an
Event (nothing else is safe there). That Event is the one passed to ``run_once``: the run finishes the file
being written, saves state and returns; then the daemon shuts down, waiting for that run.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_REMOVED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from pipeline.config import ScheduleSettings, Settings
from pipeline.models import ExitCode

log = logging.getLogger(__name__)

_JOB_ID = "refresh"
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


class _Daemon:
    """The state shared by the job thread, the scheduler's listener and the signal handler."""

    def __init__(self, run_once: Callable[[threading.Event], int]) -> None:
        self.run_once = run_once
        self.stop = threading.Event()  # set by SIGTERM/SIGINT; passed to run_once
        self.finished = threading.Event()  # set when the trigger will never fire again
        self.wake = threading.Event()  # set with either of the two above
        self.lock = threading.Lock()
        self.running = False
        self.interrupted_code: int | None = None
        self.trigger: BaseTrigger | None = None

    def job(self) -> None:
        if self.stop.is_set():
            return
        with self.lock:
            self.running = True
        started = time.monotonic()
        code: int | None = None
        try:
            code = int(self.run_once(self.stop))
        except Exception:
            log.exception("scheduled run failed with an unexpected error; the next run is still scheduled")
        finally:
            with self.lock:
                self.running = False
                if self.stop.is_set() and code is not None:
                    self.interrupted_code = code
        elapsed = time.monotonic() - started
        label = _code_name(code)
        log.info(
            "scheduled run finished: exit code %s (%s) in %.1f s; next run %s",
            "-" if code is None else code,
            label,
            elapsed,
            self.next_run(),
            extra={"exit_code": code, "duration_seconds": round(elapsed, 3)},
        )

    def next_run(self) -> str:
        # Asked of the trigger, not of the scheduler: get_job() takes the job-store lock, which shutdown()
        # holds while it waits for this very thread (a deadlock once seen in the tests).
        if self.stop.is_set() or self.trigger is None:
            return "none (stopping)"
        when: datetime | None = self.trigger.get_next_fire_time(None, datetime.now(UTC))
        return when.isoformat() if when is not None else "none"

    def on_event(self, event: JobEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("a scheduled run is due but the previous run is still going; this one is skipped")
        elif event.code == EVENT_JOB_MISSED:
            log.warning(
                "a scheduled run due at %s was missed by more than schedule.misfire_grace_time; skipped",
                getattr(event, "scheduled_run_time", "?"),
            )
        elif event.code == EVENT_JOB_REMOVED:
            self.finished.set()
            self.wake.set()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        self.wake.set()


def _code_name(code: int | None) -> str:
    if code is None:
        return "error"
    try:
        return ExitCode(code).name
    except ValueError:
        return "unknown"


def serve(
    settings: Settings,
    run_once: Callable[[threading.Event], int],
    *,
    trigger: BaseTrigger | None = None,
) -> int:
    """Run ``run_once(stop_event)`` on the schedule until SIGTERM/SIGINT; return the exit code.

    Must be called from the main thread (signal handlers). One run at a time (``max_instances=1``); runs
    missed while one was going, or while the daemon was down, are coalesced into one if they are late by
    less than ``schedule.misfire_grace_time``. Returns the interrupted run's code (usually
    ``ExitCode.INTERRUPTED``) when a signal arrived during a run, else ``ExitCode.OK``.
    """
    schedule = settings.schedule
    trigger = trigger if trigger is not None else build_trigger(schedule)
    daemon = _Daemon(run_once)
    scheduler = BackgroundScheduler(timezone=schedule.timezone)
    daemon.trigger = trigger
    scheduler.add_listener(daemon.on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_REMOVED)
    scheduler.add_job(
        daemon.job,
        trigger,
        id=_JOB_ID,
        name="pipeline refresh",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=schedule.misfire_grace_time,
    )
    previous = {sig: signal.signal(sig, daemon.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
        log.info(
            "scheduler started (cron %r, time zone %s, jitter %d s); next run %s",
            schedule.cron,
            schedule.timezone,
            schedule.jitter,
            daemon.next_run(),
        )
        # A timed wait keeps the main thread returning to the interpreter, where signal handlers run.
        while not daemon.wake.wait(0.5):
            pass
        if daemon.stop.is_set():
            with daemon.lock:
                busy = daemon.running
            log.info("stop requested: %s", "finishing the current file, then exiting" if busy else "exiting")
        scheduler.shutdown(wait=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = daemon.interrupted_code if daemon.interrupted_code is not None else int(ExitCode.OK)
    log.info("scheduler stopped (exit code %d)", code)
    return code
