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
import dataclasses
import difflib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from pipeline import check, decide
from pipeline.accept import warn_unused_hosts
from pipeline.check.hosts import HostStats
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.corpus import Article, discover, read_article
from pipeline.errors import FrontMatterError, Interrupted, ThroughMerge
from pipeline.extract.pages import Digest
from pipeline.frontmatter.document import apply, write_atomic
from pipeline.frontmatter.replace import remove_leftovers
from pipeline.health import archive, verdict
from pipeline.health.copies import find_copies
from pipeline.health.history import HistoryStore
from pipeline.ignore import LinkFilter, filter_for
from pipeline.links import extract_refs, normalize_url
from pipeline.models import (
    ALIVE,
    Change,
    Edit,
    Evidence,
    ExitCode,
    FileError,
    HostKey,
    ImageProbe,
    LinkRef,
    LinkResult,
    LinkStatus,
    Observation,
    Outcome,
    PageMeta,
    Snapshot,
    StoredPage,
    UrlHistory,
    Validators,
    format_field_path,
    host_key,
)
from pipeline.report import build as summary
from pipeline.report import files as report
from pipeline.text import printable

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
    # Only some paths (PATH arguments) instead of the configured roots: not a night, never `latest`.
    partial: bool = False
    exclude: tuple[str, ...] = ()  # --exclude patterns, on top of the configured ones
    include: tuple[str, ...] = ()  # --include patterns: only matching URLs are checked


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced."""

    exit_code: ExitCode
    report: dict[str, Any]
    report_dir: Path | None


@dataclass
class Corpus:
    """What the read pass keeps of each article: its refs and a sketch, never the whole document."""

    paths: list[Path] = field(default_factory=list)
    refs: dict[Path, list[LinkRef]] = field(default_factory=dict)
    sketches: dict[Path, tuple[decide.UnitSketch, ...]] = field(default_factory=dict)
    revisit: set[Path] = field(default_factory=set)  # flags to clean up even when no URL is checked
    errors: list[FileError] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # temporary files of the writer found beside articles


def collect(settings: Settings, stop: threading.Event | None = None) -> Corpus:
    """Discover, read and extract refs from every article; bad files become FileErrors.

    Stops early (with what it has) when ``stop`` is set; the caller sees the stop and ends the run.
    """
    corpus = Corpus()
    for found in discover(settings.corpus.roots, settings.corpus.patterns, corpus.leftovers):
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
        corpus.refs[article.path] = extract_refs(
            article.path, article.doc.data, settings.links, article.doc.line_of
        )
        corpus.sketches[article.path] = decide.sketch(article.doc.data, settings)
        if decide.stale_flags(article.doc.data, corpus.refs[article.path], settings):
            corpus.revisit.add(article.path)
    return corpus


@dataclass(frozen=True, slots=True)
class _Plan:
    urls: list[str]  # unique, in first-seen order
    page_urls: set[str]  # read whole (head) for metadata
    image_urls: set[str]  # first bytes read for the real size
    excluded: dict[str, str]  # URL -> the rule that skipped it


@dataclass(frozen=True, slots=True)
class _Counts:
    """The one definition of each URL count: the plan, the log lines and the report all use these.

    ``urls`` is every unique URL the corpus names (valid, excluded and invalid alike; the report's
    ``totals.urls``), and ``due + not_due + excluded + invalid == urls``. ``extra`` URLs are re-checked
    only to judge our own network (baseline hosts, canaries) and are not part of ``urls``.
    """

    urls: int
    due: int
    not_due: int
    excluded: int
    invalid: int
    extra: int


def _counts(corpus: Corpus, plan: _Plan, due: list[str], extra: Iterable[str]) -> _Counts:
    named = {ref.normalized or ref.url for refs in corpus.refs.values() for ref in refs}
    valid = set(plan.urls) | set(plan.excluded)
    due_set = set(due)
    return _Counts(
        urls=len(named),
        due=len(due_set),
        not_due=len(set(plan.urls) - due_set),
        excluded=len(plan.excluded),
        invalid=len(named - valid),
        extra=len(set(extra) - due_set),
    )


def _unit_field(field_path: str, nested: Iterable[str]) -> str:
    """``related[2].images[0].url`` -> ``images[].url``; ``related[2].webUrl`` -> ``webUrl``."""
    for key in nested:
        match = re.match(rf"{re.escape(key)}\[\d+\]\.", field_path)
        if match:
            field_path = field_path[match.end() :]
            break
    return re.sub(r"\[\d+\]", "[]", field_path)


def _plan_requests(corpus: Corpus, settings: Settings, rules: LinkFilter) -> _Plan:
    """Unique URLs to consider, which of them are pages and images, and the excluded ones."""
    page_fields = set(settings.links.page_fields)
    image_fields = {spec for spec in settings.links.fields if "[]." in spec}
    plan = _Plan([], set(), set(), {})
    seen: set[str] = set()
    for refs in corpus.refs.values():
        for ref in refs:
            url = ref.normalized
            if url is None or url in plan.excluded:
                continue
            skip = rules.skip_reason(url) if url not in seen else None
            if skip is not None:
                plan.excluded[url] = skip
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
    validators: Mapping[str, Validators] | None = None,
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

    observations = asyncio.run(main())
    digest.drain()  # parsing runs beside the event loop; its results are complete only now
    return observations


def _verdicts(
    urls: list[str],
    observations: Mapping[str, Observation],
    history: Mapping[str, UrlHistory],
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


def _uncounted(
    results: dict[str, LinkResult],
    judged: list[LinkResult],
    history: Mapping[str, UrlHistory],
    observations: Mapping[str, Observation],
) -> tuple[dict[str, LinkResult], list[LinkResult]]:
    """A partial run is not a night: a failure it sees is shown but neither recorded nor counted.

    Successes and blocked answers are still recorded (a sign of life is evidence on any run); a failing
    URL keeps its stored streak, so rerunning a few articles can never make a link dead sooner.
    """
    failed = (LinkStatus.FAILING, LinkStatus.DEAD)
    kept: list[LinkResult] = []
    for result in judged:
        if result.status not in failed:
            kept.append(result)
            continue
        past = history.get(result.url)
        streak = past is not None and past.consecutive_failures > 0
        results[result.url] = dataclasses.replace(
            result,
            status=LinkStatus.DEAD
            if streak and past is not None and past.status is LinkStatus.DEAD
            else LinkStatus.FAILING,
            first_failed_at=past.first_failed_at if streak and past else None,
            consecutive_failures=past.consecutive_failures if streak and past else 0,
            failure_kind=past.failure_kind if streak and past else None,
            reason=f"{observations[result.url].reason} (seen in a partial run: not counted toward dead)",
        )
    return results, kept


def _outage_streak(store: HistoryStore, started: datetime, settings: Settings) -> dict[str, Any]:
    """This outage run and the complete outage runs right before it: how many, and since when."""
    before, since = store.outage_streak()
    return {"runs": before + 1, "since": (since or started).isoformat()}


def _normalized(url: str) -> str | None:
    normalized, reason = normalize_url(url)
    if normalized is None:
        log.warning("canary %r ignored: %s", url, reason)
    return normalized


def _baseline(
    history: Mapping[str, UrlHistory], due: list[str], count: int
) -> tuple[set[HostKey], list[str]]:
    """Hosts that answered in an earlier run, and a few not-due URLs on them to re-check as a baseline.

    Without a baseline, a night where only already-failing links are due cannot tell "those sites are
    down" from "our network is down"; a handful of recently healthy hosts answers that question.
    """
    known_good = {host_key(url) for url, past in history.items() if past.status in ALIVE}
    due_set = set(due)
    # A due URL stands for its host only if it answered last time: one already failing proves nothing.
    covered = {host_key(url) for url in due if url in history and history[url].status in ALIVE}
    candidates = sorted(
        (past for url, past in history.items() if past.status in ALIVE and url not in due_set),
        key=lambda past: past.last_checked_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    baseline: list[str] = []
    for past in candidates:
        if len(covered) >= count:
            break
        host = host_key(past.url)
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
    """One whole run. The caller holds the run lock."""
    started = options.now()
    run_id = _new_run_id(started)
    mode = "dry-run" if options.dry_run else options.mode
    # A bad ignore file stops the run before any work.
    rules = filter_for(settings, options.exclude, options.include)
    # Opened first, so that a history that cannot be written stops the run before hours of reading.
    # A dry run must not create the history it promises not to write: an empty one stands in.
    database = settings.state.database
    if options.dry_run and not database.exists():
        store = HistoryStore(Path(":memory:"))  # an empty history stands in; nothing is created
    else:
        store = HistoryStore(database, read_only=options.dry_run)
    clock = time.perf_counter()
    corpus = collect(settings, options.stop)
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
    kind = "partial" if options.partial or options.include else "complete"

    temp_removed = 0 if options.dry_run else _remove_leftovers(corpus, started)
    plan = _plan_requests(corpus, settings, rules)
    warn_unused_hosts(settings.http, plan.urls)
    canaries = [url for url in map(_normalized, settings.health.outage.canary_urls) if url]
    try:
        history = store.load(plan.urls)
        due = [
            u for u in plan.urls if verdict.is_due(history.get(u), settings.health, started, options.force)
        ]
        known_good, baseline = _baseline(history, due, settings.health.outage.baseline_hosts)
        due_set = set(due)
        fetch_body: dict[str, int] = {}
        # A --check-only run still reads the pages it requests (one GET instead of a HEAD) and stores their
        # metadata, so the next run applies it without asking again.
        if settings.metadata.enabled or options.mode == "check-only":
            page_bytes, image_bytes = settings.http.max_page_bytes, settings.metadata.images.max_probe_bytes
            fetch_body = {u: page_bytes for u in plan.page_urls if u in due_set}
            fetch_body.update({u: image_bytes for u in plan.image_urls if u in due_set})
        # Pages read before with an ETag or Last-Modified are asked conditionally: a 304 costs no body and
        # their stored metadata stands (the checker counts 304s per host for the report).
        validators = store.validators([u for u in plan.page_urls if u in fetch_body])
        counts = _counts(corpus, plan, due, [*baseline, *canaries])
        if options.dry_run:
            _print_plan(out, plan, due, corpus, counts)
        else:
            store.start_run(run_id, started, mode, kind)
        exit_code = ExitCode.OK
        changes: list[Change] = []
        discovered: list[Change] = []
        write_errors: list[FileError] = []
        outage: str | None = None
        results: dict[str, LinkResult] = {}
        host_stats: dict[str, HostStats] = {}
        copies: dict[str, Snapshot] = {}
        with Progress(quiet=not options.show_progress) as progress:
            digest = Digest(plan.page_urls, plan.image_urls, progress)
            try:
                if options.stop.is_set():
                    raise Interrupted
                to_check = list(dict.fromkeys([*due, *baseline, *canaries]))
                clock = time.perf_counter()
                observations = _run_checks(
                    to_check, fetch_body, digest, settings, options, "checking links", host_stats, validators
                )
                log.info(
                    "checked %d of %d URLs (%d not due, %d excluded, %d invalid) in %.1f s%s",
                    counts.due,
                    counts.urls,
                    counts.not_due,
                    counts.excluded,
                    counts.invalid,
                    time.perf_counter() - clock,
                    f"; {counts.extra} more requested only to judge our own network" if counts.extra else "",
                )
                now = options.now()
                outage = verdict.detect_outage(observations, settings.health, known_good, canaries)
                if outage:
                    log.warning("outage: %s; no failure is recorded and no article is flagged", outage)
                # Baseline and canary answers only tell whether our network is up; recording them would
                # reset their recheck date and starve their pages of metadata refreshes.
                evidence_now = {url: obs for url, obs in observations.items() if url in due_set}
                results, judged = _verdicts(plan.urls, evidence_now, history, outage, settings, now)
                if kind == "partial":
                    results, judged = _uncounted(results, judged, history, evidence_now)
                if not options.dry_run:
                    store.record(judged, run_id, now)
                    _store_pages(store, digest, due_set, now)
                pages, probes = _known_pages(store, digest, plan.page_urls)
                copies = find_copies(
                    corpus.paths,
                    corpus.refs,
                    results,
                    store,
                    settings,
                    now,
                    outage,
                    options.dry_run,
                    options.stop,
                )
                links = archive.copy_urls(copies)
                evidence = Evidence(results, pages, probes, outage is not None, links)

                wanted: set[str] = set()
                for sketches in corpus.sketches.values():
                    wanted |= decide.image_candidates(sketches, evidence, settings)
                wanted -= probes.keys()
                wanted = {url for url in wanted if rules.skip_reason(url) is None}
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
                    probes.update(digest.probes)
                    if not options.dry_run:
                        store.record_share_probes(_share_probes(pages, digest.probes))
                clock = time.perf_counter()
                if options.dry_run:
                    progress.close()  # the diffs go to the terminal below the finished bars, not under them
                # Every article citing a page with known metadata is visited, even when nothing of it was
                # due: stored metadata reaches new articles and the ones an interrupted run did not write.
                changes, discovered, write_errors = _write_pass(
                    corpus, set(evidence_now) | pages.keys(), evidence, settings, options, out, store
                )
                log.info("%d changes in %.1f s", len(changes), time.perf_counter() - clock)
            except Interrupted:
                exit_code = ExitCode.INTERRUPTED
                kind = "interrupted"
                log.warning("stopped on request; the files written so far are complete")
            finally:
                digest.close()

        errors = corpus.errors + write_errors
        _log_file_errors(errors)
        if exit_code is ExitCode.OK and errors:
            exit_code = ExitCode.FILES_FAILED
        streak = None
        if outage and kind == "complete" and not options.dry_run:
            streak = _outage_streak(store, started, settings)
            if streak["runs"] >= settings.health.outage.max_consecutive > 0:
                exit_code = ExitCode.OUTAGE_STREAK
                log.error(
                    "the network has been down for %d runs in a row, since %s: fix this machine's network"
                    " (DNS, proxy, firewall); no link has been judged since then",
                    streak["runs"],
                    streak["since"],
                )
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
            temp_files_removed=temp_removed,
            archive=copies,
        )
        run_report["run"]["kind"] = kind
        run_report["run"]["outage_streak"] = streak
        run_report["totals"]["checked"] = counts.due
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
                kind=kind,
            )
            try:
                report_dir = report.write_reports(
                    run_report,
                    settings.reports.dir,
                    store.list_runs(settings.reports.trend_runs),
                    settings.reports.keep_runs,
                    point_latest=kind == "complete" or not report.latest_is_complete(settings.reports.dir),
                )
            except OSError as exc:
                # The history (verdicts, this run's row and report) is already saved: only the files failed.
                exit_code = ExitCode.PATH_UNUSABLE
                run_report["run"]["exit_code"] = int(exit_code)
                store.set_exit_code(run_id, int(exit_code))
                where = exc.filename if isinstance(exc.filename, str) else settings.reports.dir
                log.error(
                    "%s: cannot write the report: %s; the run's history is saved (`pipeline report --run %s`"
                    " prints it); make the folder writable, or point reports.dir (--reports-dir) elsewhere",
                    where,
                    exc.strerror or exc,
                    run_id,
                )
        return RunOutcome(exit_code, run_report, report_dir)
    finally:
        store.close()


def _store_pages(store: HistoryStore, digest: Digest, due: set[str], now: datetime) -> None:
    """Keep the metadata of every page read for a due URL; forget pages now refused (error pages …).

    A page that answered without a body (a 304, a failure) is not in ``digest.pages``: its stored
    metadata stands.
    """
    fresh = [
        StoredPage.from_meta(url, meta, now, *digest.validators.get(url, (None, None)))
        for url, meta in digest.pages.items()
        if url in due
    ]
    store.record_pages(fresh, forget=[url for url, _ in digest.refused if url in due])


def _known_pages(
    store: HistoryStore, digest: Digest, page_urls: set[str]
) -> tuple[dict[str, PageMeta], dict[str, ImageProbe]]:
    """This run's pages and probes, completed from the store for pages not read (or not readable) now."""
    refused = {url for url, _ in digest.refused}
    stored = store.load_pages(u for u in page_urls if u not in digest.pages and u not in refused)
    pages = {url: page.to_meta() for url, page in stored.items()}
    pages.update(digest.pages)
    probes: dict[str, ImageProbe] = {}
    for page in stored.values():
        probe = page.share_probe()
        key = normalize_url(page.image_url)[0] if page.image_url else None
        if probe is not None and key:
            probes[key] = probe
    probes.update(digest.probes)
    return pages, probes


def _share_probes(
    pages: Mapping[str, PageMeta], probes: Mapping[str, ImageProbe]
) -> dict[str, tuple[bool, int | None, int | None]]:
    """What this run's probes showed about each page's share image, by the image URL the page declares."""
    found: dict[str, tuple[bool, int | None, int | None]] = {}
    for meta in pages.values():
        if not meta.images:
            continue
        declared = meta.images[0].url
        probe = probes.get(normalize_url(declared)[0] or "")
        if probe is not None:
            found[declared] = (probe.alive, probe.width, probe.height)
    return found


def _write_pass(
    corpus: Corpus,
    checked: set[str],
    evidence: Evidence,
    settings: Settings,
    options: RunOptions,
    out: TextIO,
    store: HistoryStore | None = None,
) -> tuple[list[Change], list[Change], list[FileError]]:
    """Re-read each article that names a URL in ``checked``, decide, and write it (or print its diff).

    An article naming no such URL has no evidence and is skipped; so is one whose file (size, mtime) and
    evidence digest are those it had when it last needed no change (recorded in ``store``).
    Re-reading keeps memory flat on large corpora, and ``write_atomic`` compares the bytes on disk with
    the bytes this pass read, so an edit made meanwhile is never overwritten. Stops between files on request.
    """
    changes: list[Change] = []
    discovered: list[Change] = []
    errors: list[FileError] = []
    # An unchanged file whose evidence is what it was when it last needed no change needs none now.
    settings_key = "".join(
        section.model_dump_json() for section in (settings.metadata, settings.health, settings.links)
    )
    decided = store.load_decided() if store is not None else {}
    settled: list[tuple[bytes, int, int, str]] = []
    try:
        for path in corpus.paths:
            if options.stop.is_set():
                raise Interrupted
            if path not in corpus.revisit and not any(ref.normalized in checked for ref in corpus.refs[path]):
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                errors.append(FileError(str(path), f"cannot read ({exc.strerror or exc})"))
                continue
            digest = decide.fingerprint(corpus.refs[path], evidence, settings_key)
            state = (stat.st_size, stat.st_mtime_ns, digest)
            name = os.fsencode(path)  # file names need not be UTF-8
            if decided.get(name) == state:
                continue
            if _write_one(path, evidence, settings, options, out, changes, discovered, errors):
                settled.append((name, *state))
    finally:
        if store is not None and not options.dry_run:
            store.record_decided(settled)
    return changes, discovered, errors


def _write_one(
    path: Path,
    evidence: Evidence,
    settings: Settings,
    options: RunOptions,
    out: TextIO,
    changes: list[Change],
    discovered: list[Change],
    errors: list[FileError],
) -> bool:
    """Decide one article and write it (or print its diff); its changes, discoveries and errors are added.

    Returns whether the article needed nothing: no change and no error.
    """
    try:
        article = read_article(path, settings.corpus.max_file_bytes)
        refs = extract_refs(path, article.doc.data, settings.links)
        decision = decide.decide(str(path), article.doc.data, refs, evidence, settings)
        discovered.extend(decision.discovered)
        if not decision.edits:
            return True
        new, made, refused = _apply_around_merges(article, decision)
        errors.extend(refused)
        if new == article.doc.raw:
            return not refused
        if options.dry_run:
            _print_diff(out, article, new)
        else:
            write_atomic(path, new, article.doc.raw, settings.corpus.roots)
        changes.extend(made)
        for change in made:
            log.debug("%s: %s: %r -> %r", change.article, change.field_path, change.old, change.new)
    except FrontMatterError as exc:
        errors.append(_file_error(path, exc))
    return False


def _apply_around_merges(
    article: Article, decision: decide.Decision
) -> tuple[bytes, list[Change], list[FileError]]:
    """The article with the decided edits, leaving out (and reporting) each edit made through a merge key.

    An article using ``<<: *base`` is checked and edited like any other; only an edit whose value comes
    through the merge would change the base (and every article sharing it), so that edit alone is refused.
    """
    try:
        return apply(article.doc, decision.edits), list(decision.changes), []
    except ThroughMerge:
        pass
    kept: list[Edit] = []
    refused: list[FileError] = []
    refused_paths: list[str] = []
    for edit in decision.edits:
        try:
            apply(article.doc, [edit])
        except ThroughMerge as exc:
            refused.append(FileError(str(article.path), str(exc)))
            refused_paths.append(format_field_path(edit.path))
            continue
        kept.append(edit)

    def made_by_kept(change: Change) -> bool:
        return not any(
            change.field_path == refused or change.field_path.startswith((f"{refused}.", f"{refused}["))
            for refused in refused_paths
        )

    return apply(article.doc, kept), [c for c in decision.changes if made_by_kept(c)], refused


def _print_plan(out: TextIO, plan: _Plan, due: list[str], corpus: Corpus, counts: _Counts) -> None:
    invalid = [ref for refs in corpus.refs.values() for ref in refs if ref.normalized is None]
    out.write(
        f"plan: {len(corpus.paths)} articles, {counts.urls} unique URLs on "
        f"{len({host_key(u) for u in plan.urls})} hosts; {counts.due} due for a check, "
        f"{counts.not_due} not due, {counts.excluded} excluded, {counts.invalid} invalid\n"
    )
    due_set = set(due)
    for url in plan.urls:
        out.write(f"  {'check' if url in due_set else 'fresh'}  {printable(url)}\n")
    for url in sorted(plan.excluded):
        out.write(f"  skip   {printable(url)}\n")
    for ref in invalid:
        out.write(printable(f"  invalid {ref.article}: {ref.field_path}: {ref.invalid_reason}") + "\n")


def _print_diff(out: TextIO, article: Article, new: bytes) -> None:
    old_lines = article.doc.raw.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    name = printable(article.path)
    diff = difflib.unified_diff(old_lines, new_lines, f"a/{name}", f"b/{name}")
    # A web value may hold controls; each diff line stays one line of printable text on the terminal.
    lines = [printable(line.rstrip("\r\n")) + "\n" for line in diff]
    out.writelines(_colored(lines) if _wants_color(out) else lines)


# ANSI colours of `git diff`: bold headers, cyan hunks, red removals, green additions.
_DIFF_COLORS = (
    ("+++", "\x1b[1m"),
    ("---", "\x1b[1m"),
    ("@@", "\x1b[36m"),
    ("+", "\x1b[32m"),
    ("-", "\x1b[31m"),
)


def _wants_color(out: TextIO) -> bool:
    """Colour on a terminal only (never in a pipe or a file), and never when NO_COLOR is set."""
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _colored(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        color = next((code for prefix, code in _DIFF_COLORS if line.startswith(prefix)), None)
        if color is None:
            yield line
        else:
            body = line.rstrip("\r\n")
            yield f"{color}{body}\x1b[0m{line[len(body) :]}"
