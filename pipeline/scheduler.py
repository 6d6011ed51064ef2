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

from pipeline.config import Settings
from pipeline.cron import build_trigger
from pipeline.models import ExitCode

log = logging.getLogger(__name__)

_JOB_ID = "refresh"


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
