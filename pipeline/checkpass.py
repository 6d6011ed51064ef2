"""The check pass of a run: due URLs (and the baseline) checked, our network judged, verdicts recorded,
the evidence the decisions read, the images they may write probed.

Reads: the run's plan and history, ``http.*``, ``retry.*``, ``health.*``, ``metadata.images.*``,
``archive.*``.
Returns: the run's verdicts and an ``Evidence``; a stop request cancels the check within 0.2 s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipeline import check, decide, reuse
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.extract.pages import PageReader
from pipeline.health import archive, verdict
from pipeline.health.copies import find_copies
from pipeline.health.pages import known_pages, share_probes, store_pages
from pipeline.health.verdict import uncounted, verdicts
from pipeline.models import (
    Evidence,
    Observation,
    RunOptions,
    Validators,
)
from pipeline.runreport import HostStats
from pipeline.runstate import Run

if TYPE_CHECKING:  # Celery is imported only by a run that uses it
    from pipeline.distributed.prepared import Prepared

log = logging.getLogger("pipeline")


def _run_checks(
    urls: list[str],
    fetch_body: Mapping[str, int],
    digest: PageReader,
    settings: Settings,
    options: RunOptions,
    label: str,
    host_stats: dict[str, HostStats] | None = None,
    validators: Mapping[str, Validators] | None = None,
    progress: Progress | None = None,
    origin: dict[str, str] | None = None,
    prepared: Prepared | None = None,
    keep: bool = True,
) -> dict[str, Observation]:
    """Run the checks here (``executor: local``) or on the workers (``celery``); a stop request cancels
    them promptly. ``origin`` gets which worker requested each URL, ``prepared`` is the run's dispatch made
    ready during the read (``celery`` only); ``keep=False``: the local check keeps no observation
    (``digest`` sees them all)."""
    if not urls:
        return {}
    if options.show_progress and progress is not None:
        progress.start(len(urls), label)

    if settings.executor == "celery":  # the same observations and digest, gathered by the workers
        from pipeline.distributed.coordinator import check_remote

        return check_remote(
            urls,
            settings,
            digest,
            fetch_body=fetch_body,
            validators=validators,
            host_stats=host_stats,
            stop=options.stop,
            progress=progress if options.show_progress else None,
            origin=origin,
            prepared=prepared,
        )
    observations = check.check_links_sync(
        urls,
        settings,
        fetch_body=fetch_body,
        on_result=digest,
        keep_pages=False,
        host_stats=host_stats,
        validators=validators,
        stop=options.stop,
        keep_observations=keep,
    )
    digest.drain()  # parsing runs beside the event loop; its results are complete only now
    return observations


def check_pass(
    run: Run, digest: PageReader, checked: tuple[dict[str, Observation], float] | None = None
) -> None:
    """Check the due URLs (and the baseline), judge our network, and give each URL its verdict.

    ``checked``: the observations (and seconds) of a check already made beside the read pass
    (``pipeline.overlap``), the ones this pass would make.
    """
    settings, counted = run.settings, run.counts
    clock = time.perf_counter()
    origin: dict[str, str] = {}
    if checked is None:
        to_check = list(dict.fromkeys([*run.due, *run.extra]))
        observations = _run_checks(
            to_check,
            run.fetch_body,
            digest,
            settings,
            run.options,
            "checking links",
            run.host_stats,
            run.validators,
            run.progress,
            origin,
            run.prepared,
        )
        seconds = time.perf_counter() - clock
    else:
        observations, seconds = checked
        checked = None  # the observations are let go below, as the verdicts replace them
    log.info(
        "checked %d of %d URLs (%d not due, %d excluded, %d invalid) in %.1f s%s",
        counted.due,
        counted.urls,
        counted.not_due,
        counted.excluded,
        counted.invalid,
        seconds,
        f"; {counted.extra} more requested only to judge our own network" if counted.extra else "",
    )
    now = run.checked_at = run.options.now()
    run.outage = verdict.detect_outage(observations, settings.health, run.known_good, run.canaries)
    if run.outage:
        log.warning("outage: %s; no failure is recorded and no article is flagged", run.outage)
    # Baseline and canary answers only tell whether our network is up; recording them would reset their
    # recheck date and starve their pages of metadata refreshes.
    due_set = set(run.due)
    suspect = _suspect(observations, origin, run) if origin and not run.outage else {}
    for url in [url for url in observations if url not in due_set]:
        del observations[url]  # in place: a copy of every observation would be held beside them
    evidence_now = observations
    del observations
    # Rows staged while the check ran stand where the observation recorded is the one staged (``staging``).
    staged = run.early.confirm(evidence_now) if run.early is not None else set()
    run.early = None
    run.results, judged = verdicts(
        run.plan.urls, evidence_now, run.history, run.outage, settings, now, suspect
    )
    if run.kind == "partial":
        run.results, judged = uncounted(run.results, judged, run.history, evidence_now)
    if not run.options.dry_run:
        run.store.record(judged, run.run_id, now, staged)
        store_pages(run.store, digest, due_set, now)
    # Quiet: nothing but the history to go on (a basis for reusing the last write pass, ``reuse``).
    run.quiet = not due_set and not evidence_now and not digest.pages and not digest.refused
    run.quiet = run.quiet and not digest.probes
    # What the rest of the run reads of the plan and the history; the whole records go (memory).
    # The plan's strings, not the observations' (copies unpickled from the check's process).
    run.observed = {url for url in run.results if url in evidence_now}
    run.history, run.fetch_body, run.validators, run.due = {}, {}, {}, []


def _suspect(observations: dict[str, Observation], origin: dict[str, str], run: Run) -> dict[str, str]:
    """URLs whose failure below HTTP is no evidence: the worker that requested them looked cut off."""
    outages = verdict.worker_outages(observations, origin, run.settings.health, run.known_good, run.canaries)
    for worker, reason in outages.items():
        log.warning("outage on worker %s: %s; its failures below HTTP are not counted", worker, reason)
    return {
        url: f"worker {origin[url]}: {outages[origin[url]]}"
        for url, obs in observations.items()
        if obs.network_level and origin.get(url) in outages
    }


def evidence_of(run: Run, digest: PageReader) -> Evidence:
    """Everything the decisions read: verdicts, page metadata (tonight's or stored), probes, archive
    copies. On a quiet night like the last write pass's (``reuse``) the stored pages are read only when
    something reads them."""
    corpus, options = run.corpus, run.options
    run.copies = find_copies(
        corpus.paths,
        corpus.refs,
        run.results,
        run.store,
        run.settings,
        run.checked_at or run.started,
        run.outage,
        options.dry_run,
        options.stop,
    )
    copies = archive.copy_urls(run.copies)
    run.basis = reuse.basis(run, copies)
    run.reuse = run.basis is not None and run.basis == run.store.evidence_basis()
    if run.reuse:
        stored = reuse.StoredEvidence(run.store, digest, run.plan.page_urls)
        pages, probes = stored.pages, stored.probes
    else:
        pages, probes = known_pages(run.store, digest, run.plan.page_urls)
    return Evidence(run.results, pages, probes, run.outage is not None, copies)


def probe_images(run: Run, digest: PageReader, evidence: Evidence) -> Evidence:
    """Probe the images the decisions may write that no page probe measured yet; the evidence with them.

    Reusing a quiet night's evidence (``run.reuse``), there are none: that night's were none, and this
    one's are made from the same corpus, settings and evidence."""
    if run.reuse:
        return evidence
    settings = run.settings
    wanted: set[str] = set()
    # An image is a candidate only beside a page's metadata: with none known (no page read tonight or
    # before: a corpus of feeds and files), no article's sketch needs looking at.
    for sketches in run.corpus.refs.sketches.each() if evidence.pages else ():
        wanted |= decide.image_candidates(sketches, evidence, settings)
    wanted -= evidence.probes.keys()
    wanted -= {url for url in wanted if run.rules.skip_reason(url) is not None}  # not a second set of all
    if not wanted:
        return evidence
    fetch_body = dict.fromkeys(sorted(wanted), settings.metadata.images.max_probe_bytes)
    run.quiet, run.basis = False, None  # evidence of its own tonight: no basis to reuse
    del wanted  # the map of sizes is the one set of these images (a large corpus probes one per page)
    digest.expect_images(fetch_body.keys())
    _run_checks(
        list(fetch_body),
        fetch_body,
        digest,
        settings,
        run.options,
        "probing images",
        progress=run.progress,
        keep=False,  # what the probes measured is in the digest; their observations are not read
    )
    if not run.options.dry_run:
        for chunk in share_probes(evidence.pages, digest.probes):
            run.store.record_share_probes(chunk)
    return evidence  # its probes are a view of the digest's: tonight's new ones are in it
