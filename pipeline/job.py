"""One refresh as a job: the run lock, the first log lines, the one-line summary, the CI output, the
exit code.

Reads: Settings and the CLI's choices. Returns: the exit code. Used by ``pipeline refresh`` and by the
scheduler's daemon (``pipeline schedule``), which is handed this function; the runner does the run itself.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

import click

from pipeline.config import Settings
from pipeline.errors import PathUnusable
from pipeline.models import STATUSES, ExitCode
from pipeline.report.formats import CiOutput
from pipeline.text import printable

log = logging.getLogger("pipeline")


def run_once(
    settings: Settings,
    stop: threading.Event,
    *,
    check_only: bool = False,
    dry_run: bool = False,
    force: bool = False,
    quiet: bool = False,
    config: str = "",
    partial: bool = False,
    output: CiOutput | None = None,
) -> int:
    """A refresh under the run lock; returns the exit code (also used by the scheduler).

    Logs which configuration it runs on (``config``) and where it reads and writes, first of all.
    """
    from pipeline.errors import EngineUnavailable, IgnoreFileError, LockHeld
    from pipeline.lock import run_lock
    from pipeline.models import RunOptions
    from pipeline.runner import refresh as run_refresh

    output = output or CiOutput()
    options = RunOptions(
        mode="check-only" if check_only else "refresh",
        dry_run=dry_run,
        force=force,
        stop=stop,
        show_progress=not quiet,
        partial=partial,
        exclude=output.exclude,
        include=output.include,
    )
    log.info(
        "config: %s; corpus %s; state %s; reports %s",
        config or "given by the caller",
        ", ".join(str(root) for root in settings.corpus.roots),
        settings.state.dir,
        settings.reports.dir,
    )
    plan_out = sys.stderr if output.to_stdout else sys.stdout  # stdout carries the --format result
    try:
        if dry_run:  # writes nothing, so it needs no lock (and must not create the state folder for one)
            outcome = run_refresh(settings, options, plan_out)
        else:
            with run_lock(settings.state.lock_file), _shared_history_lock(settings):
                outcome = run_refresh(settings, options, plan_out)
    except LockHeld as exc:
        log.error("%s", exc)
        return ExitCode.LOCKED
    except PathUnusable as exc:
        log.error("%s", exc)
        return ExitCode.PATH_UNUSABLE
    except EngineUnavailable as exc:
        log.error("engine unavailable: %s", printable(exc))
        return ExitCode.ENGINE_UNAVAILABLE
    except IgnoreFileError as exc:
        click.echo(f"config error: {printable(exc)}", err=True)
        return ExitCode.CONFIG_ERROR
    run, totals = outcome.report.run, outcome.report.totals
    counts = ", ".join(f"{totals.count(k)} {k}" for k in STATUSES if totals.count(k))
    where = f"; report: {outcome.report_dir}/report.md" if outcome.report_dir else ""
    outage = f"; OUTAGE: {run.outage}" if run.outage else ""
    log.info(
        "run %s%s: %d articles, %d URLs, %d checked (%s), %d changes, %d file errors%s%s",
        run.id,
        "" if run.kind == "complete" else f" ({run.kind})",
        totals.articles,
        totals.urls,
        totals.checked or 0,
        counts or "none",
        totals.changes,
        totals.files_failed,
        outage,
        where,
    )
    try:
        output.emit(outcome.report)
    except OSError as exc:
        log.error("cannot write %s: %s", output.path, exc.strerror or exc)
        return int(ExitCode.FILES_FAILED)
    return output.exit_code(outcome.report, int(outcome.exit_code))


_LOCK_CONNECT_S = 10.0  # a history that does not answer by then is left to the run's own open to report


def _shared_history_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """The run lock of a PostgreSQL history (several machines may share one), else nothing more."""
    from pipeline.health import postgres

    url = settings.state.url
    if url is None or not postgres.is_postgres(url):
        return contextlib.nullcontext()
    return postgres.history_lock(url, _LOCK_CONNECT_S)
