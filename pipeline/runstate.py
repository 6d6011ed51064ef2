"""What one run gathers as its stages go (:class:`Run`); the runner builds the report from it once.

Reads: nothing itself. Holds: the settings and options, the history store, the corpus, the plan, the
verdicts, the evidence counts, the changes and the files that failed.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.health.history import HistoryStore
from pipeline.health.staging import EarlyRows
from pipeline.ignore import LinkFilter
from pipeline.models import (
    Change,
    ExitCode,
    FileError,
    HostKey,
    LinkResult,
    LinkStatus,
    RunOptions,
    Snapshot,
    UrlHistory,
    Validators,
)
from pipeline.plan import Counts, Plan
from pipeline.readpass import Corpus
from pipeline.runreport import HostStats

if TYPE_CHECKING:  # Celery only for a run that uses it; the early report rows only for their type
    from pipeline.distributed.prepared import Prepared
    from pipeline.report.early import EarlyLinks


@dataclass
class Run:
    """What one run gathers as its stages go; the report is built from it once, at the end."""

    settings: Settings
    options: RunOptions
    out: TextIO
    store: HistoryStore
    rules: LinkFilter
    started: datetime
    run_id: str
    mode: str
    kind: str = "complete"
    corpus: Corpus = field(default_factory=Corpus)
    plan: Plan = field(default_factory=lambda: Plan([], set(), set(), {}))
    history: dict[str, UrlHistory] = field(default_factory=dict)
    due: list[str] = field(default_factory=list)
    fetch_body: dict[str, int] = field(default_factory=dict)
    validators: dict[str, Validators] = field(default_factory=dict)
    known_good: set[HostKey] = field(default_factory=set)
    extra: list[str] = field(default_factory=list)  # baseline and canary URLs: only to judge our network
    canaries: list[str] = field(default_factory=list)
    counts: Counts = field(default_factory=lambda: Counts(0, 0, 0, 0, 0, 0))
    temp_removed: int = 0
    exit_code: ExitCode = ExitCode.OK
    outage: str | None = None
    results: MutableMapping[str, LinkResult] = field(default_factory=dict)  # a ResultTable once judged
    observed: set[str] = field(default_factory=set)  # due URLs this run has an observation of
    previous: dict[str, LinkStatus] = field(default_factory=dict)  # the stored verdicts (the report's)
    host_stats: dict[str, HostStats] = field(default_factory=dict)
    copies: dict[str, Snapshot] = field(default_factory=dict)
    changes: Sequence[Change] = ()  # a Spool once the write pass ran
    discovered: Sequence[Change] = ()
    write_errors: list[FileError] = field(default_factory=list)
    refused_pages: list[tuple[str, str]] = field(default_factory=list)
    progress: Progress | None = None
    checked_at: datetime | None = None  # when this run's checks ended: the time of its evidence
    prepared: Prepared | None = None  # executor: celery: the check's dispatch, made ready during the read
    early: EarlyRows | None = None  # the answered URLs' history rows, staged while the check runs
    early_links: EarlyLinks | None = None  # and their report rows (``report.early``)
    # A quiet night (no due URL checked, no page read, no image probed) and what its evidence is made
    # from (``pipeline.reuse``); ``reuse``: the last write pass's URL digests stand for it.
    quiet: bool = False
    basis: str | None = None
    reuse: bool = False
