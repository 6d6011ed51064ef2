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

import asyncio
import difflib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from pipeline import check, decide, report, summary, verdict
from pipeline._hostcontrol import HostStats
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.corpus import Article, discover, read_article
from pipeline.digest import Digest
from pipeline.frontmatter import FrontMatterError, apply, write_atomic
from pipeline.links import compile_excludes, extract_refs, host_of, is_excluded, normalize_url
from pipeline.models import (
    Change,
    ExitCode,
    FileError,
    LinkRef,
    LinkResult,
    LinkStatus,
    Observation,
    Outcome,
)
from pipeline.state import HistoryStore

log = logging.getLogger("pipeline")

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


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced."""

    exit_code: ExitCode
    report: dict[str, Any]
    report_dir: Path | None


class Interrupted(Exception):
    """A stop was requested; raised between stages and caught by ``refresh``."""


@dataclass
class _Corpus:
    """What the read pass keeps of each article: its refs and a sketch, never the whole document."""

    paths: list[Path] = field(default_factory=list)
    refs: dict[Path, list[LinkRef]] = field(default_factory=dict)
    sketches: dict[Path, tuple[decide.UnitSketch, ...]] = field(default_factory=dict)
    revisit: set[Path] = field(default_factory=set)  # flags to clean up even when no URL is checked
    errors: list[FileError] = field(default_factory=list)


def collect(settings: Settings, stop: threading.Event | None = None) -> _Corpus:
    """Discover, read and extract refs from every article; bad files become FileErrors.

    Stops early (with what it has) when ``stop`` is set; the caller sees the stop and ends the run.
    """
    corpus = _Corpus()
    for found in discover(settings.corpus.roots, settings.corpus.patterns):
        if stop is not None and stop.is_set():
            break
        if isinstance(found, FileError):
            corpus.errors.append(found)
            continue
        try:
            article = read_article(found, settings.corpus.max_file_bytes)
        except FrontMatterError as exc:
            corpus.errors.append(_file_error(found, exc))
            continue
        corpus.paths.append(article.path)
        corpus.refs[article.path] = extract_refs(article.path, article.doc.data, settings.links)
        corpus.sketches[article.path] = decide.sketch(article.doc.data, settings)
        if decide.stale_flags(article.doc.data, corpus.refs[article.path], settings):
            corpus.revisit.add(article.path)
    return corpus


@dataclass(frozen=True, slots=True)
class _Plan:
    urls: list[str]  # unique, in first-seen order
    page_urls: set[str]  # read whole (head) for metadata
    image_urls: set[str]  # first bytes read for the real size
    excluded: set[str]


def _unit_field(field_path: str, nested: Iterable[str]) -> str:
    """``related[2].images[0].url`` -> ``images[].url``; ``related[2].webUrl`` -> ``webUrl``."""
    for key in nested:
        match = re.match(rf"{re.escape(key)}\[\d+\]\.", field_path)
        if match:
            field_path = field_path[match.end() :]
            break
    return re.sub(r"\[\d+\]", "[]", field_path)


def _plan_requests(corpus: _Corpus, settings: Settings) -> _Plan:
    """Unique URLs to consider, which of them are pages and images, and the excluded ones."""
    excludes = compile_excludes(settings.links)
    page_fields = set(settings.links.page_fields)
    image_fields = {spec for spec in settings.links.fields if "[]." in spec}
    plan = _Plan([], set(), set(), set())
    seen: set[str] = set()
    for refs in corpus.refs.values():
        for ref in refs:
            url = ref.normalized
            if url is None:
                continue
            if is_excluded(url, excludes):
                plan.excluded.add(url)
                continue
            if url not in seen:
                seen.add(url)
                plan.urls.append(url)
            kind = _unit_field(ref.field_path, settings.links.nested)
            if kind in page_fields:
                plan.page_urls.add(url)
            elif kind in image_fields:
                plan.image_urls.add(url)
    plan.image_urls.difference_update(plan.page_urls)
    return plan


def _run_checks(
    urls: list[str],
    fetch_body: Mapping[str, int],
    digest: Digest,
    settings: Settings,
    options: RunOptions,
    label: str,
    host_stats: dict[str, HostStats] | None = None,
    validators: Mapping[str, check.Validators] | None = None,
) -> dict[str, Observation]:
    """Run the async checker, cancelling it promptly when a stop is requested."""
    if not urls:
        return {}
    if options.show_progress:
        digest.progress.start(len(urls), label)

    async def main() -> dict[str, Observation]:
        task = asyncio.ensure_future(
            check.check_links(
                urls,
                settings,
                fetch_body=fetch_body,
                on_result=digest,
                keep_pages=False,
                host_stats=host_stats,
                validators=validators,
            )
        )
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if options.stop.is_set():
                task.cancel()
                raise Interrupted
        return task.result()

    return asyncio.run(main())


def _verdicts(
    urls: list[str],
    observations: Mapping[str, Observation],
    history: Mapping[str, verdict.UrlHistory],
    outage: str | None,
    settings: Settings,
    now: datetime,
) -> tuple[dict[str, LinkResult], list[LinkResult]]:
    """Every URL's verdict, and the ones judged on this run's evidence (the ones to record)."""
    results: dict[str, LinkResult] = {}
    judged: list[LinkResult] = []
    for url in urls:
        past = history.get(url)
        obs = observations.get(url)
        if obs is None:
            if past is not None:
                results[url] = verdict.carried(past)
            continue
        if outage and obs.outcome not in (Outcome.SUCCESS, Outcome.MOVED, Outcome.SKIPPED):
            # Our own network may be down: this failure is no evidence. Keep what history said.
            results[url] = (
                verdict.carried(past)
                if past
                else LinkResult(url, LinkStatus.SKIPPED, reason=f"not judged: {outage}")
            )
            continue
        results[url] = verdict.judge(obs, past, settings.health, now)
        judged.append(results[url])
    return results, judged


def _normalized(url: str) -> str | None:
    normalized, reason = normalize_url(url)
    if normalized is None:
        log.warning("canary %r ignored: %s", url, reason)
    return normalized


def _baseline(
    history: Mapping[str, verdict.UrlHistory], due: list[str], count: int
) -> tuple[set[str], list[str]]:
    """Hosts that answered in an earlier run, and a few not-due URLs on them to re-check as a baseline.

    Without a baseline, a night where only already-failing links are due cannot tell "those sites are
    down" from "our network is down"; a handful of recently healthy hosts answers that question.
    """
    alive = (LinkStatus.OK, LinkStatus.REDIRECTED)
    known_good = {check.host_key(url) for url, past in history.items() if past.status in alive}
    due_set = set(due)
    # A due URL stands for its host only if it answered last time: one already failing proves nothing.
    covered = {check.host_key(url) for url in due if url in history and history[url].status in alive}
    candidates = sorted(
        (past for url, past in history.items() if past.status in alive and url not in due_set),
        key=lambda past: past.last_checked_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    baseline: list[str] = []
    for past in candidates:
        if len(covered) >= count:
            break
        host = check.host_key(past.url)
        if host not in covered:
            covered.add(host)
            baseline.append(past.url)
    return known_good, baseline


def _file_error(path: Path, exc: Exception) -> FileError:
    """A FileError whose message does not repeat the path it is filed under."""
    return FileError(str(path), str(exc).removeprefix(f"{path}: "))


_ERRORS_LOGGED = 50  # a corpus with thousands of broken files must not flood cron's mail


def _log_file_errors(errors: list[FileError]) -> None:
    for error in errors[:_ERRORS_LOGGED]:
        log.warning("%s: %s", error.article, error.message)
    if len(errors) > _ERRORS_LOGGED:
        log.warning("… and %d more file errors (all are in the report)", len(errors) - _ERRORS_LOGGED)


def _new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def refresh(settings: Settings, options: RunOptions, out: TextIO) -> RunOutcome:
    """One whole run. The caller holds the run lock."""
    started = options.now()
    run_id = _new_run_id(started)
    mode = "dry-run" if options.dry_run else options.mode
    clock = time.perf_counter()
    corpus = collect(settings, options.stop)
    log.info(
        "read %d articles (%d files failed) in %.1f s",
        len(corpus.paths),
        len(corpus.errors),
        time.perf_counter() - clock,
    )

    plan = _plan_requests(corpus, settings)
    canaries = [url for url in map(_normalized, settings.health.outage.canary_urls) if url]
    # A dry run must not create the history it promises not to write: an empty one stands in.
    database = settings.state.database
    if options.dry_run and not database.exists():
        store = HistoryStore(Path(":memory:"))  # an empty history stands in; nothing is created
    else:
        store = HistoryStore(database, read_only=options.dry_run)
    try:
        history = store.load(plan.urls)
        due = [
            u for u in plan.urls if verdict.is_due(history.get(u), settings.health, started, options.force)
        ]
        known_good, baseline = _baseline(history, due, settings.health.outage.baseline_hosts)
        due_set = set(due)
        fetch_body: dict[str, int] = {}
        if settings.metadata.enabled:
            page_bytes, image_bytes = settings.http.max_page_bytes, settings.metadata.images.max_probe_bytes
            fetch_body = {u: page_bytes for u in plan.page_urls if u in due_set}
            fetch_body.update({u: image_bytes for u in plan.image_urls if u in due_set})
        if options.dry_run:
            _print_plan(out, plan, due, corpus)
        else:
            store.start_run(run_id, started, mode)
        exit_code = ExitCode.OK
        changes: list[Change] = []
        discovered: list[Change] = []
        write_errors: list[FileError] = []
        outage: str | None = None
        results: dict[str, LinkResult] = {}
        host_stats: dict[str, HostStats] = {}
        with Progress(quiet=not options.show_progress) as progress:
            digest = Digest(plan.page_urls, plan.image_urls, progress)
            try:
                if options.stop.is_set():
                    raise Interrupted
                to_check = list(dict.fromkeys([*due, *baseline, *canaries]))
                clock = time.perf_counter()
                observations = _run_checks(
                    to_check, fetch_body, digest, settings, options, "checking links", host_stats
                )
                log.info(
                    "checked %d of %d URLs (%d not due) in %.1f s",
                    len(observations),
                    len(plan.urls),
                    len(plan.urls) - len(due),
                    time.perf_counter() - clock,
                )
                now = options.now()
                outage = verdict.detect_outage(observations, settings.health, known_good, canaries)
                if outage:
                    log.warning("outage: %s; no failure is recorded and no article is flagged", outage)
                # Baseline and canary answers only tell whether our network is up; recording them would
                # reset their recheck date and starve their pages of metadata refreshes.
                evidence_now = {url: obs for url, obs in observations.items() if url in due_set}
                results, judged = _verdicts(plan.urls, evidence_now, history, outage, settings, now)
                if not options.dry_run:
                    store.record(judged, run_id, now)
                evidence = decide.Evidence(results, digest.pages, digest.probes, outage is not None)

                wanted: set[str] = set()
                for sketches in corpus.sketches.values():
                    wanted |= decide.image_candidates(sketches, evidence, settings)
                wanted -= digest.probes.keys()
                excludes = compile_excludes(settings.links)
                wanted = {url for url in wanted if not is_excluded(url, excludes)}
                if wanted:
                    digest.image_urls = wanted
                    probe_bytes = settings.metadata.images.max_probe_bytes
                    _run_checks(
                        sorted(wanted),
                        dict.fromkeys(wanted, probe_bytes),
                        digest,
                        settings,
                        options,
                        "probing images",
                    )
                clock = time.perf_counter()
                changes, discovered, write_errors = _write_pass(
                    corpus, set(evidence_now), evidence, settings, options, out
                )
                log.info("%d changes in %.1f s", len(changes), time.perf_counter() - clock)
            except Interrupted:
                exit_code = ExitCode.INTERRUPTED
                log.warning("stopped on request; the files written so far are complete")

        errors = corpus.errors + write_errors
        _log_file_errors(errors)
        if exit_code is ExitCode.OK and errors:
            exit_code = ExitCode.FILES_FAILED
        finished = options.now()
        run_report = summary.build_report(
            run_id=run_id,
            started=started,
            finished=finished,
            exit_code=int(exit_code),
            mode=mode,
            outage=outage,
            settings=settings,
            articles=len(corpus.paths),
            refs=corpus.refs,
            results=results,
            previous={u: h.status for u, h in history.items()},
            excluded=plan.excluded,
            changes=changes,
            discovered=discovered,
            refused_pages=digest.refused,
            errors=errors,
            host_stats=host_stats,
        )
        report_dir = None
        if not options.dry_run:
            store.finish_run(
                run_id,
                finished,
                int(exit_code),
                outage,
                run_report["totals"],
                run_report,
                keep_reports=settings.reports.keep_runs,
            )
            report_dir = report.write_reports(
                run_report,
                settings.reports.dir,
                store.list_runs(settings.reports.trend_runs),
                settings.reports.keep_runs,
            )
        return RunOutcome(exit_code, run_report, report_dir)
    finally:
        store.close()


def _write_pass(
    corpus: _Corpus,
    checked: set[str],
    evidence: decide.Evidence,
    settings: Settings,
    options: RunOptions,
    out: TextIO,
) -> tuple[list[Change], list[Change], list[FileError]]:
    """Re-read each article that names a URL checked this run, decide, and write it (or print its diff).

    An article whose URLs were all carried from history (not due) has no new evidence and is skipped.
    Re-reading keeps memory flat on large corpora, and ``write_atomic`` compares the bytes on disk with
    the bytes this pass read, so an edit made meanwhile is never overwritten. Stops between files on request.
    """
    changes: list[Change] = []
    discovered: list[Change] = []
    errors: list[FileError] = []
    for path in corpus.paths:
        if options.stop.is_set():
            raise Interrupted
        if path not in corpus.revisit and not any(ref.normalized in checked for ref in corpus.refs[path]):
            continue
        try:
            article = read_article(path, settings.corpus.max_file_bytes)
            refs = extract_refs(path, article.doc.data, settings.links)
            decision = decide.decide(str(path), article.doc.data, refs, evidence, settings)
            discovered.extend(decision.discovered)
            if not decision.edits:
                continue
            new = apply(article.doc, decision.edits)
            if new == article.doc.raw:
                continue
            if options.dry_run:
                _print_diff(out, article, new)
            else:
                write_atomic(path, new, article.doc.raw, settings.corpus.roots)
            changes.extend(decision.changes)
            for change in decision.changes:
                log.debug("%s: %s: %r -> %r", change.article, change.field_path, change.old, change.new)
        except FrontMatterError as exc:
            errors.append(_file_error(path, exc))
    return changes, discovered, errors


def _print_plan(out: TextIO, plan: _Plan, due: list[str], corpus: _Corpus) -> None:
    invalid = [ref for refs in corpus.refs.values() for ref in refs if ref.normalized is None]
    out.write(
        f"plan: {len(corpus.paths)} articles, {len(plan.urls)} unique URLs on "
        f"{len({host_of(u) for u in plan.urls})} hosts; {len(due)} due for a check, "
        f"{len(plan.excluded)} excluded, {len(invalid)} invalid\n"
    )
    due_set = set(due)
    for url in plan.urls:
        out.write(f"  {'check' if url in due_set else 'fresh'}  {url}\n")
    for url in sorted(plan.excluded):
        out.write(f"  skip   {url}\n")
    for ref in invalid:
        out.write(f"  invalid {ref.article}: {ref.field_path}: {ref.invalid_reason}\n")


def _print_diff(out: TextIO, article: Article, new: bytes) -> None:
    old_lines = article.doc.raw.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    name = str(article.path)
    out.writelines(difflib.unified_diff(old_lines, new_lines, f"a/{name}", f"b/{name}"))
