"""One run of the pipeline: the only module that calls every stage.

collect articles -> extract refs -> check due URLs (one request per unique URL, pages and image heads
fetched in the same request) -> verdicts with history -> scrape pages, probe images -> decide -> write
atomically -> record history -> report.

Reads every settings section. Returns a ``RunOutcome`` (exit code, report, report folder).
A file that cannot be read, parsed or written becomes a ``FileError`` in the report; the run goes on.
A stop request (SIGTERM/SIGINT sets ``stop``) is honoured between files: the file being written is
finished, history and the report are saved, and the exit code says the run was interrupted.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline import memory, overlap
from pipeline.accept import warn_unused_hosts
from pipeline.checkpass import check_pass, evidence_of, probe_images
from pipeline.checkprocess import discard_prestarted
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.errors import CheckProcessLost, EngineUnavailable, Interrupted
from pipeline.extract.pages import PageReader
from pipeline.frontmatter.replace import remove_leftovers
from pipeline.health import verdict
from pipeline.health.history import HistoryStore
from pipeline.health.staging import EarlyRows
from pipeline.health.verdict import baseline
from pipeline.ignore import filter_for
from pipeline.links import normalize_url
from pipeline.models import (
    Evidence,
    ExitCode,
    FileError,
    RunOptions,
)
from pipeline.plan import Plan, counts, plan_requests, print_plan
from pipeline.readpass import Corpus, collect
from pipeline.report import build
from pipeline.report import files as report
from pipeline.report.early import EARLY_ROWS, EarlyLinks
from pipeline.report.render import prepare as prepare_reports
from pipeline.report.view import Summary
from pipeline.runreport import OutageStreak, RunReport
from pipeline.runstate import Run
from pipeline.write import AnyOf, write_pass

if TYPE_CHECKING:
    from pipeline.distributed.prepared import Prepared

log = logging.getLogger("pipeline")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced."""

    exit_code: ExitCode
    report: RunReport
    report_dir: Path | None


def _outage_streak(store: HistoryStore, started: datetime, settings: Settings) -> OutageStreak:
    """This outage run and the complete outage runs right before it: how many, and since when."""
    before, since = store.outage_streak()
    return OutageStreak(before + 1, (since or started).isoformat())


def _normalized(url: str) -> str | None:
    normalized, reason = normalize_url(url)
    if normalized is None:
        log.warning("canary %r ignored: %s", url, reason)
    return normalized


_ERRORS_LOGGED = 50  # a corpus with thousands of broken files must not flood cron's mail


def _log_file_errors(errors: list[FileError]) -> None:
    for error in errors[:_ERRORS_LOGGED]:
        log.warning("%s: %s", error.article, error.message)
    if len(errors) > _ERRORS_LOGGED:
        log.warning("… and %d more file errors (all are in the report)", len(errors) - _ERRORS_LOGGED)


def _remove_leftovers(corpus: Corpus, started: datetime) -> int:
    """Remove the temporary files an earlier, killed run left beside articles; say how many."""
    removed, failed = remove_leftovers(corpus.leftovers, started.timestamp())
    corpus.errors.extend(FileError(str(path), reason) for path, reason in failed)
    if removed:
        log.info("removed %d temporary files left by an earlier run", removed)
    return removed


def _new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def refresh(settings: Settings, options: RunOptions, out: TextIO) -> RunOutcome:
    """One whole run, stage after stage. The caller holds the run lock."""
    started = options.now()
    # A bad ignore file stops the run before any work.
    rules = filter_for(settings, options.exclude, options.include)
    prepared = _prepare_remote(settings, options)
    try:
        store = _open_store(settings, options)
    except BaseException:
        if prepared is not None:
            prepared.close()
        raise
    mode = "dry-run" if options.dry_run else options.mode
    run = Run(settings, options, out, store, rules, started, _new_run_id(started), mode, prepared=prepared)
    try:
        with Progress(quiet=not options.show_progress) as progress:
            run.progress = progress
            # The checks start while the read pass runs (a dry run prints its whole plan first).
            feed = overlap.Feed(run, progress) if overlap.eligible(settings, options) else None
            try:
                _read(run, feed)
                _plan(run, feed)
                memory.release()  # what the parse left
                memory.keep_from_collections()  # the corpus and the imports: not rescanned again
                if feed is not None and store.stages:  # the answered URLs' rows, made as they arrive
                    run.early_links = _early_links(run)
                    run.early = EarlyRows(
                        store, run.run_id, run.history, settings.health, set(run.extra), run.early_links
                    )
            except BaseException:
                if feed is not None:
                    feed.cancel()
                raise
            digest = feed.digest if feed else PageReader(run.plan.page_urls, run.plan.image_urls, progress)
            try:
                if feed is not None and not options.dry_run:
                    prepare_reports()  # while the checks run: the reports after them start at once
                if options.stop.is_set():
                    raise Interrupted
                _check_and_write(run, digest, feed)
            except Interrupted as exc:
                run.exit_code, run.kind = ExitCode.INTERRUPTED, "interrupted"
                if isinstance(exc, CheckProcessLost):  # no verdict was made: no article was written
                    log.error("%s: the run is saved as an interrupted one; no article was written", exc)
                else:
                    log.warning("stopped on request; the files written so far are complete")
            except EngineUnavailable as exc:  # no file is written either way
                if run.checked_at is None or options.dry_run:  # nothing recorded: the run leaves no trace
                    if not options.dry_run:
                        store.forget_run(run.run_id)
                    raise
                # The verdicts are recorded (the image probes failed): saved like an interrupted run.
                run.exit_code, run.kind = ExitCode.ENGINE_UNAVAILABLE, "interrupted"
                log.error("engine unavailable: %s", exc)
            finally:
                if feed is not None:
                    feed.cancel()
                digest.close()
            run.refused_pages = list(digest.refused)
            # The observations, pages and probes are not kept while the report is made (memory's peak).
            del digest, feed
            memory.release()
        return _finish(run)
    finally:
        memory.thaw()
        if run.prepared is not None:
            run.prepared.close()  # not taken: nothing was due, or the run stopped before its check
        store.close()


def _early_links(run: Run) -> EarlyLinks | None:
    """The answered URLs' report rows, made while the check runs, for a small run (``report.early``)."""
    if len(run.plan.urls) > EARLY_ROWS or len(run.corpus.paths) > EARLY_ROWS:
        return None
    return EarlyLinks(run.corpus.refs, run.previous)


def _prepare_remote(settings: Settings, options: RunOptions) -> Prepared | None:
    """``executor: celery``: the broker, the workers' count and the dispatch, made ready meanwhile."""
    if settings.executor != "celery":
        return None
    from pipeline.distributed.prepared import Prepared  # Celery only for a run that uses it

    discard_prestarted()  # the workers check: a local check's process would only take CPU from them
    # The report templates are compiled while the workers check (after the first shards left).
    return Prepared(settings, options.stop, meanwhile=None if options.dry_run else prepare_reports)


def _check_and_write(run: Run, digest: PageReader, feed: overlap.Feed | None) -> None:
    """The check pass, the evidence and the image probes, then the write pass."""
    check_pass(run, digest, feed.finish() if feed else None)
    memory.release()  # the observations, judged: the image probes' peak comes next
    evidence = probe_images(run, digest, evidence_of(run, digest))
    # The write pass reads the plan's URLs and exclusions, not its sets of pages and images (memory).
    run.plan = Plan(run.plan.urls, set(), set(), run.plan.excluded)
    digest.page_urls = digest.image_urls = frozenset()
    memory.release()  # the check's buffers, freed by its own thread
    if run.options.dry_run and run.progress is not None:
        run.progress.close()  # the diffs go to the terminal below the finished bars, not under them
    _write(run, evidence, AnyOf(run.observed, evidence.pages))  # their union, without a set of it
    # What the report reads of the plan is its exclusions; the rest goes before the report is made.
    run.plan = Plan([], set(), set(), run.plan.excluded)
    run.observed = set()


def _open_store(settings: Settings, options: RunOptions) -> HistoryStore:
    """The history, opened first so that one that cannot be written stops the run before hours of reading.

    A dry run must not create the history it promises not to write: an empty one stands in.
    """
    if options.dry_run and settings.state.url is None and not settings.state.database.exists():
        return HistoryStore(Path(":memory:"))
    return HistoryStore(settings.state.database, read_only=options.dry_run, url=settings.state.url)


def _read(run: Run, feed: overlap.Feed | None = None) -> None:
    """The read pass (each batch handed to ``feed``), the leftovers of a killed run, and the plan."""
    settings, options = run.settings, run.options
    clock = time.perf_counter()
    run.corpus = collect(
        settings,
        options.stop,
        run.store,
        force=options.force,
        record=not options.dry_run,
        prune=not options.partial,
        on_batch=feed,
    )
    corpus = run.corpus
    log.info(
        "read %d articles (%d files failed) in %.1f s",
        len(corpus.paths),
        len(corpus.errors),
        time.perf_counter() - clock,
    )
    if not corpus.paths and not corpus.errors and not options.stop.is_set():
        log.warning(
            "no article found under %s matching %s: this run checks nothing",
            ", ".join(str(root) for root in settings.corpus.roots),
            ", ".join(settings.corpus.patterns),
        )
    # A run on some paths, or on the URLs an --include picks, is not a night (a configured include is).
    run.kind = "partial" if options.partial or options.include else "complete"
    run.temp_removed = 0 if options.dry_run else _remove_leftovers(corpus, run.started)
    run.plan = plan_requests(corpus.refs, settings, run.rules)
    warn_unused_hosts(settings.http, run.plan.urls)
    run.canaries = [url for url in map(_normalized, settings.health.outage.canary_urls) if url]


def _plan(run: Run, feed: overlap.Feed | None = None) -> None:
    """Which URLs are due, which are asked for their body or conditionally, and the baseline hosts.

    The URLs' history is the one ``feed`` loaded during the read pass, when the checks overlapped it.
    """
    settings, options, plan, store = run.settings, run.options, run.plan, run.store
    run.history = feed.history_of(plan.urls) if feed is not None else store.load(plan.urls)
    run.previous = {url: past.status for url, past in run.history.items()}
    run.due = [
        u
        for u in plan.urls
        if verdict.is_due(run.history.get(u), settings.health, run.started, options.force)
    ]
    run.known_good, extra = baseline(run.history, run.due, settings.health.outage.baseline_hosts)
    due_set = set(run.due)
    sizes = overlap.body_sizes(run)
    if sizes is not None:
        page_bytes, image_bytes = sizes
        run.fetch_body = {u: page_bytes for u in plan.page_urls if u in due_set}
        run.fetch_body.update({u: image_bytes for u in plan.image_urls if u in due_set})
    # Pages read before with an ETag or Last-Modified are asked conditionally: a 304 costs no body and
    # their stored metadata stands (the checker counts 304s per host for the report).
    run.validators = store.validators([u for u in plan.page_urls if u in run.fetch_body])
    run.extra = [*extra, *run.canaries]
    run.counts = counts(run.corpus.refs, plan, run.due, run.extra)
    if options.dry_run:
        print_plan(run.out, plan, run.due, run.corpus.refs, run.counts)
    else:
        store.start_run(run.run_id, run.started, run.mode, run.kind)


def _write(run: Run, evidence: Evidence, checked: Container[str]) -> None:
    """The write pass over every article citing a checked URL or a page with known metadata.

    Every article citing a page with known metadata is visited, even when nothing of it was due: stored
    metadata reaches new articles and the ones an interrupted run did not write.
    """
    clock = time.perf_counter()
    run.changes, run.discovered, run.write_errors = write_pass(
        run.corpus,
        checked,
        evidence,
        run.settings,
        run.options,
        run.out,
        run.store,
        urls=[*run.plan.urls, *run.plan.excluded],
        basis=run.basis,
        reuse=run.reuse,
    )
    log.info("%d changes in %.1f s", len(run.changes), time.perf_counter() - clock)


def _finish(run: Run) -> RunOutcome:
    """Per-file errors and the exit code, then the history's run row and the report files."""
    settings, options, store = run.settings, run.options, run.store
    run.early = None  # a run stopped mid-check still holds it (and through it the early rows)
    errors = run.corpus.errors + run.write_errors
    _log_file_errors(errors)
    if run.exit_code is ExitCode.OK and errors:
        run.exit_code = ExitCode.FILES_FAILED
    streak = None
    if run.outage and run.kind == "complete" and not options.dry_run:
        streak = _outage_streak(store, run.started, settings)
        if streak.runs >= settings.health.outage.max_consecutive > 0:
            run.exit_code = ExitCode.OUTAGE_STREAK
            log.error(
                "the network has been down for %d runs in a row, since %s: fix this machine's network"
                " (DNS, proxy, firewall); no link has been judged since then",
                streak.runs,
                streak.since,
            )
    finished = options.now()
    run_report = build.build_report(
        run_id=run.run_id,
        started=run.started,
        finished=finished,
        exit_code=int(run.exit_code),
        mode=run.mode,
        outage=run.outage,
        settings=settings,
        articles=len(run.corpus.paths),
        refs=run.corpus.refs,
        results=run.results,
        previous=run.previous,
        excluded=run.plan.excluded,
        changes=run.changes,
        discovered=run.discovered,
        refused_pages=run.refused_pages,
        errors=errors,
        host_stats=run.host_stats,
        temp_files_removed=run.temp_removed,
        archive=run.copies,
        kind=run.kind,
        outage_streak=streak,
        checked=run.counts.due,
        early=run.early_links,
    )
    lines = run.early_links.lines if run.early_links is not None else None
    # The report holds what the rest reads; the corpus and the verdicts go before its files are made.
    run.corpus, run.results, run.previous, run.changes, run.early_links = Corpus(), {}, {}, (), None
    memory.release()
    if options.dry_run:
        return RunOutcome(run.exit_code, run_report, None)
    # Compressed as it is made (the JSON is never held whole), with report.md/html's summary in that pass.
    stored, summary = report.stored_copy_and_summary(run_report, lines)
    store.finish_run(
        run.run_id,
        finished,
        int(run.exit_code),
        run.outage,
        run_report.totals.to_json(),
        stored,
        keep_reports=settings.reports.keep_runs,
        kind=run.kind,
    )
    store.checkpoint_aside()  # while the report files are written
    return _write_reports(run, run_report, stored, summary)


def _write_reports(run: Run, run_report: RunReport, stored: bytes, summary: Summary) -> RunOutcome:
    """The report files; when they cannot be written the history (already saved) says so and exit is 6."""
    settings, store = run.settings, run.store
    try:
        report_dir = report.write_reports(
            run_report,
            settings.reports.dir,
            store.list_runs(settings.reports.trend_runs),
            settings.reports.keep_runs,
            point_latest=run.kind == "complete" or not report.latest_is_complete(settings.reports.dir),
            stored=stored,
            summary=summary,
        )
    except OSError as exc:
        # The history (verdicts, this run's row and report) is already saved: only the files failed.
        run.exit_code = ExitCode.PATH_UNUSABLE
        run_report = run_report.with_exit_code(int(run.exit_code))
        store.set_exit_code(run.run_id, int(run.exit_code))
        where = exc.filename if isinstance(exc.filename, str) else settings.reports.dir
        log.error(
            "%s: cannot write the report: %s; the run's history is saved (`pipeline report --run %s`"
            " prints it); make the folder writable, or point reports.dir (--reports-dir) elsewhere",
            where,
            exc.strerror or exc,
            run.run_id,
        )
        return RunOutcome(run.exit_code, run_report, None)
    return RunOutcome(run.exit_code, run_report, report_dir)
