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
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from pipeline import check, decide, report, summary, verdict
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.corpus import Article, discover, read_article
from pipeline.frontmatter import FrontMatterError, apply, write_atomic
from pipeline.images import measure
from pipeline.links import compile_excludes, extract_refs, host_of, is_excluded
from pipeline.models import (
    Change,
    ExitCode,
    FileError,
    LinkRef,
    LinkResult,
    LinkStatus,
    Observation,
    Outcome,
    PageMeta,
)
from pipeline.scrape import looks_like_error_page, scrape
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
    articles: list[Article] = field(default_factory=list)
    refs: dict[Path, list[LinkRef]] = field(default_factory=dict)
    errors: list[FileError] = field(default_factory=list)


def collect(settings: Settings) -> _Corpus:
    """Discover, read and extract refs from every article; bad files become FileErrors."""
    corpus = _Corpus()
    for found in discover(settings.corpus.roots, settings.corpus.patterns):
        if isinstance(found, FileError):
            corpus.errors.append(found)
            continue
        try:
            article = read_article(found, settings.corpus.max_file_bytes)
        except FrontMatterError as exc:
            corpus.errors.append(FileError(str(found), str(exc)))
            continue
        corpus.articles.append(article)
        corpus.refs[article.path] = extract_refs(article.path, article.doc.data, settings.links)
    return corpus


def _plan_requests(corpus: _Corpus, settings: Settings) -> tuple[list[str], dict[str, int], set[str]]:
    """Unique URLs to consider, the body bytes wanted per URL, and the excluded ones."""
    excludes = compile_excludes(settings.links)
    page_fields = set(settings.links.page_fields)
    image_leaves = {spec.split("[].", 1)[1] for spec in settings.links.fields if "[]." in spec}
    urls: dict[str, None] = {}
    fetch_body: dict[str, int] = {}
    excluded: set[str] = set()
    for refs in corpus.refs.values():
        for ref in refs:
            if ref.normalized is None:
                continue
            if is_excluded(ref.normalized, excludes):
                excluded.add(ref.normalized)
                continue
            urls[ref.normalized] = None
            leaf = ref.field_path.rsplit(".", 1)[-1]
            if settings.metadata.enabled and leaf in page_fields and "[" not in leaf:
                fetch_body[ref.normalized] = settings.http.max_page_bytes
            elif settings.metadata.enabled and leaf in image_leaves and ".images[" in f".{ref.field_path}":
                fetch_body.setdefault(ref.normalized, settings.metadata.images.max_probe_bytes)
    return list(urls), fetch_body, excluded


def _run_checks(
    urls: list[str], fetch_body: Mapping[str, int], settings: Settings, options: RunOptions, label: str
) -> dict[str, Observation]:
    """Run the async checker, cancelling it promptly when a stop is requested."""
    if not urls:
        return {}
    with Progress() as progress:
        if options.show_progress:
            progress.start(len(urls), label)

        async def main() -> dict[str, Observation]:
            task = asyncio.ensure_future(
                check.check_links(
                    urls, settings, fetch_body=fetch_body, on_result=lambda _: progress.advance()
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
        if outage and obs.outcome not in (Outcome.SUCCESS, Outcome.MOVED):
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


def _usable_pages(
    observations: Mapping[str, Observation],
    results: Mapping[str, LinkResult],
    fetch_body: Mapping[str, int],
    settings: Settings,
) -> tuple[dict[str, PageMeta], list[tuple[str, str]]]:
    """Metadata of pages that are alive and not error pages; plus (url, reason) for pages refused."""
    pages: dict[str, PageMeta] = {}
    refused: list[tuple[str, str]] = []
    for url, obs in observations.items():
        if obs.page is None or fetch_body.get(url) != settings.http.max_page_bytes:
            continue
        result = results.get(url)
        if result is None or result.status not in (LinkStatus.OK, LinkStatus.REDIRECTED):
            continue
        if "html" not in obs.page.content_type and obs.page.content_type:
            continue
        meta = scrape(obs.page.body, obs.page.final_url, obs.page.headers)
        reason = looks_like_error_page(meta)
        if reason:
            refused.append((url, reason))
            continue
        pages[url] = meta
    return pages, refused


def _probes(observations: Mapping[str, Observation], image_urls: Iterable[str]) -> dict[str, Any]:
    probes = {}
    for url in image_urls:
        obs = observations.get(url)
        if obs is None:
            continue
        http_ok = obs.outcome in (Outcome.SUCCESS, Outcome.MOVED)
        body = obs.page.body if obs.page else b""
        content_type = obs.page.content_type if obs.page else None
        probes[url] = measure(url, body, content_type, http_ok)
    return probes


def _new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def refresh(settings: Settings, options: RunOptions, out: TextIO) -> RunOutcome:
    """One whole run. The caller holds the run lock."""
    started = options.now()
    run_id = _new_run_id(started)
    mode = "dry-run" if options.dry_run else options.mode
    corpus = collect(settings)
    log.info("read %d articles (%d files failed)", len(corpus.articles), len(corpus.errors))

    urls, fetch_body, excluded = _plan_requests(corpus, settings)
    if options.mode == "check-only":
        fetch_body = {}
    canaries = [c for c in settings.health.outage.canary_urls if c not in urls]
    store = HistoryStore(settings.state.database)
    try:
        history = store.load(urls)
        due = [u for u in urls if verdict.is_due(history.get(u), settings.health, started, options.force)]
        if options.dry_run:
            _print_plan(out, urls, due, excluded, corpus)
        if not options.dry_run:
            store.start_run(run_id, started, mode)
        exit_code = ExitCode.OK
        changes: list[Change] = []
        discovered: list[Change] = []
        write_errors: list[FileError] = []
        refused_pages: list[tuple[str, str]] = []
        outage: str | None = None
        results: dict[str, LinkResult] = {}
        try:
            observations = _run_checks(due + canaries, fetch_body, settings, options, "checking links")
            now = options.now()
            outage = verdict.detect_outage(observations, settings.health)
            if outage:
                log.warning("outage: %s; no failure is recorded and no article is flagged", outage)
            results, judged = _verdicts(urls, observations, history, outage, settings, now)
            if not options.dry_run:
                store.record(judged, run_id, now)
            pages, refused_pages = _usable_pages(observations, results, fetch_body, settings)
            image_urls = {u for u, n in fetch_body.items() if n == settings.metadata.images.max_probe_bytes}
            probes = _probes(observations, image_urls)
            evidence = decide.Evidence(results, pages, probes, outage is not None)

            wanted: set[str] = set()
            for article in corpus.articles:
                wanted |= decide.image_candidates(article.doc.data, evidence, settings)
            wanted -= set(probes)
            if wanted and options.mode == "refresh":
                probe_bytes = settings.metadata.images.max_probe_bytes
                extra = _run_checks(
                    sorted(wanted), dict.fromkeys(wanted, probe_bytes), settings, options, "probing images"
                )
                evidence = decide.Evidence(
                    results, pages, {**probes, **_probes(extra, wanted)}, outage is not None
                )

            for article in corpus.articles:
                if options.stop.is_set():
                    raise Interrupted
                decision = decide.decide(
                    str(article.path), article.doc.data, corpus.refs[article.path], evidence, settings
                )
                discovered.extend(decision.discovered)
                if not decision.edits:
                    continue
                try:
                    new = apply(article.doc, decision.edits)
                    if new == article.doc.raw:
                        continue
                    if options.dry_run:
                        _print_diff(out, article, new)
                    else:
                        write_atomic(article.path, new, article.doc.raw, settings.corpus.roots)
                    changes.extend(decision.changes)
                except FrontMatterError as exc:
                    write_errors.append(FileError(str(article.path), str(exc)))
        except Interrupted:
            exit_code = ExitCode.INTERRUPTED
            log.warning("stopped on request; the files written so far are complete")

        errors = corpus.errors + write_errors
        if exit_code is ExitCode.OK and errors:
            exit_code = ExitCode.FILES_FAILED
        finished = options.now()
        previous = {u: h.status for u, h in history.items()}
        run_report = summary.build_report(
            run_id=run_id,
            started=started,
            finished=finished,
            exit_code=int(exit_code),
            mode=mode,
            outage=outage,
            settings=settings,
            articles=len(corpus.articles),
            refs=corpus.refs,
            results=results,
            previous=previous,
            excluded=excluded,
            changes=changes,
            discovered=discovered,
            refused_pages=refused_pages,
            errors=errors,
        )
        report_dir = None
        if not options.dry_run:
            store.finish_run(run_id, finished, int(exit_code), outage, run_report["totals"], run_report)
            report_dir = report.write_reports(
                run_report,
                settings.reports.dir,
                store.list_runs(settings.reports.trend_runs),
                settings.reports.keep_runs,
            )
        return RunOutcome(exit_code, run_report, report_dir)
    finally:
        store.close()


def _print_plan(out: TextIO, urls: list[str], due: list[str], excluded: set[str], corpus: _Corpus) -> None:
    invalid = [ref for refs in corpus.refs.values() for ref in refs if ref.normalized is None]
    out.write(
        f"plan: {len(corpus.articles)} articles, {len(urls)} unique URLs on "
        f"{len({host_of(u) for u in urls})} hosts; {len(due)} due for a check, "
        f"{len(excluded)} excluded, {len(invalid)} invalid\n"
    )
    due_set = set(due)
    for url in urls:
        out.write(f"  {'check' if url in due_set else 'fresh'}  {url}\n")
    for url in sorted(excluded):
        out.write(f"  skip   {url}\n")
    for ref in invalid:
        out.write(f"  invalid {ref.article}: {ref.field_path}: {ref.invalid_reason}\n")


def _print_diff(out: TextIO, article: Article, new: bytes) -> None:
    old_lines = article.doc.raw.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    name = str(article.path)
    out.writelines(difflib.unified_diff(old_lines, new_lines, f"a/{name}", f"b/{name}"))
