"""Command line: flags -> settings -> run -> exit code. No pipeline logic lives here.

Exit codes (``pipeline.models.ExitCode``): 0 run completed; 1 some files failed (or `validate` found
problems); 2 usage error (click); 3 configuration error; 4 another run holds the lock; 5 interrupted.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import __version__
from pipeline.config import ConfigError, Settings, load_settings, with_overrides
from pipeline.console import setup_logging
from pipeline.models import ExitCode

log = logging.getLogger("pipeline")
F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    """Options every command takes."""
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Config file (default: config/pipeline.yaml when it exists).",
    )(func)
    func = click.option("-v", "--verbose", is_flag=True, help="Log every request and decision.")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors (for cron).")(func)
    func = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="Log lines as text or JSON (journald, collectors).",
    )(func)
    return func


def _settings(config_path: Path | None, overrides: dict[str, Any]) -> Settings:
    try:
        return with_overrides(load_settings(config_path), overrides)
    except ConfigError as exc:
        click.echo(f"config error: {exc}", err=True)
        sys.exit(ExitCode.CONFIG_ERROR)


def _logging(settings: Settings, verbose: bool, quiet: bool, log_format: str | None) -> None:
    level = "DEBUG" if verbose else settings.logging.level
    setup_logging(log_format or settings.logging.format, level, quiet)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline")
def main() -> None:
    """Link-health and metadata refresh for folders of front-matter articles."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--check-only", is_flag=True, help="Check links and flag dead ones; no metadata refresh.")
@click.option(
    "--dry-run", is_flag=True, help="Print the plan and the diffs; write no file, history or report."
)
@click.option("--force", is_flag=True, help="Recheck URLs whose `ok` verdict is still fresh.")
@click.option("--max-concurrency", type=int, help="Requests in flight at once, over all hosts.")
@click.option("--per-host", "per_host", type=int, help="Requests in flight at once to one host.")
@click.option("--min-host-interval", type=float, help="Seconds between request starts to one host.")
@click.option(
    "--state-dir", type=click.Path(path_type=Path, file_okay=False), help="History and lock folder."
)
@click.option("--reports-dir", type=click.Path(path_type=Path, file_okay=False), help="Reports folder.")
@_common
def refresh(
    paths: tuple[Path, ...],
    check_only: bool,
    dry_run: bool,
    force: bool,
    max_concurrency: int | None,
    per_host: int | None,
    min_host_interval: float | None,
    state_dir: Path | None,
    reports_dir: Path | None,
    config_path: Path | None,
    verbose: bool,
    quiet: bool,
    log_format: str | None,
) -> None:
    """Check every link of the corpus (PATHS, default: corpus.roots), refresh metadata, write a report."""
    settings = _settings(
        config_path,
        {
            "corpus.roots": list(paths) or None,
            "http.max_concurrency": max_concurrency,
            "http.per_host_concurrency": per_host,
            "http.min_host_interval": min_host_interval,
            "state.dir": state_dir,
            "reports.dir": reports_dir,
            "metadata.enabled": False if check_only else None,
        },
    )
    _logging(settings, verbose, quiet, log_format)
    stop = threading.Event()
    _stop_on_signals(stop)
    code = run_once(settings, stop, check_only=check_only, dry_run=dry_run, force=force, quiet=quiet)
    sys.exit(code)


def run_once(
    settings: Settings,
    stop: threading.Event,
    *,
    check_only: bool = False,
    dry_run: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> int:
    """A refresh under the run lock; returns the exit code (also used by the scheduler)."""
    from pipeline.lock import LockHeld, run_lock
    from pipeline.runner import RunOptions
    from pipeline.runner import refresh as run_refresh

    options = RunOptions(
        mode="check-only" if check_only else "refresh",
        dry_run=dry_run,
        force=force,
        stop=stop,
        show_progress=not quiet,
    )
    try:
        if dry_run:  # writes nothing, so it needs no lock (and must not create the state folder for one)
            outcome = run_refresh(settings, options, sys.stdout)
        else:
            with run_lock(settings.state.lock_file):
                outcome = run_refresh(settings, options, sys.stdout)
    except LockHeld as exc:
        log.error("%s", exc)
        return ExitCode.LOCKED
    totals = outcome.report["totals"]
    counts = ", ".join(
        f"{totals[k]} {k}"
        for k in ("ok", "redirected", "failing", "dead", "blocked", "invalid", "skipped")
        if totals.get(k)
    )
    where = f"; report: {outcome.report_dir}/report.md" if outcome.report_dir else ""
    outage = f"; OUTAGE: {outcome.report['run']['outage']}" if outcome.report["run"]["outage"] else ""
    log.info(
        "run %s: %d articles, %d URLs (%s), %d changes, %d file errors%s%s",
        outcome.report["run"]["id"],
        totals["articles"],
        totals["urls"],
        counts or "none",
        totals["changes"],
        totals["files_failed"],
        outage,
        where,
    )
    return int(outcome.exit_code)


def _stop_on_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: finish the file being written, save, exit. A second SIGINT aborts."""

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("received %s: stopping after the current file", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_common
def validate(
    paths: tuple[Path, ...], config_path: Path | None, verbose: bool, quiet: bool, log_format: str | None
) -> None:
    """Lint a corpus: every file's front-matter errors and invalid URLs. Exit 1 when any."""
    from pipeline.runner import collect

    settings = _settings(config_path, {"corpus.roots": list(paths) or None})
    _logging(settings, verbose, quiet, log_format)
    corpus = collect(settings)
    problems = 0
    for error in corpus.errors:
        click.echo(f"{error.article}: error: {error.message}")
        problems += 1
    for refs in corpus.refs.values():
        for ref in refs:
            if ref.normalized is None:
                click.echo(f"{ref.article}: {ref.field_path}: invalid URL {ref.url!r}: {ref.invalid_reason}")
                problems += 1
    urls = sum(len(refs) for refs in corpus.refs.values())
    click.echo(
        f"{len(corpus.paths)} articles read, {len(corpus.errors)} files failed, "
        f"{urls} URL references, {problems} problems"
    )
    sys.exit(ExitCode.FILES_FAILED if problems else ExitCode.OK)


@main.command()
@click.option("--run", "run_id", help="Run id (default: the latest finished run).")
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default="md")
@_common
def report(
    run_id: str | None, fmt: str, config_path: Path | None, verbose: bool, quiet: bool, log_format: str | None
) -> None:
    """Re-render a past run's report from the history database to standard output."""
    import json

    from pipeline.report import render_html, render_markdown
    from pipeline.state import HistoryStore

    settings = _settings(config_path, {})
    _logging(settings, verbose, quiet, log_format)
    if not settings.state.database.exists():
        click.echo(f"no history yet: {settings.state.database} does not exist", err=True)
        sys.exit(ExitCode.FILES_FAILED)
    with HistoryStore(settings.state.database) as store:
        document = store.get_report(run_id)
        trend = store.list_runs(settings.reports.trend_runs)
    if document is None:
        click.echo(f"no such run: {run_id or 'latest'}", err=True)
        sys.exit(ExitCode.FILES_FAILED)
    if fmt == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif fmt == "md":
        click.echo(render_markdown(document), nl=False)
    else:
        click.echo(render_html(document, trend), nl=False)


@main.command()
@_common
def schedule(config_path: Path | None, verbose: bool, quiet: bool, log_format: str | None) -> None:
    """Run `refresh` on the cron expression of schedule.cron until stopped (SIGTERM/SIGINT)."""
    from pipeline.scheduler import serve

    settings = _settings(config_path, {})  # the schedule is validated with the rest of the config
    _logging(settings, verbose, quiet, log_format)
    sys.exit(serve(settings, lambda stop: run_once(settings, stop, quiet=True)))


@main.command()
@click.option("--urls", default=5000, show_default=True, help="URLs to check.")
@click.option("--hosts", default=20, show_default=True, help="Loopback addresses serving them.")
@click.option("--latency-ms", default=100.0, show_default=True, help="Server latency per request.")
@click.option("--per-host", default=10, show_default=True, help="Connections per host.")
@click.option("--no-lychee", is_flag=True, help="Do not run lychee for comparison.")
@click.option(
    "--rate-limit", is_flag=True, help="One host answers 429 (Retry-After: 2) to 1% of its requests."
)
def bench(urls: int, hosts: int, latency_ms: float, per_host: int, no_lychee: bool, rate_limit: bool) -> None:
    """Benchmark the link checker against local servers (and lychee, when installed)."""
    from pipeline.bench import run_benchmark

    sys.exit(run_benchmark(urls, hosts, latency_ms, per_host, not no_lychee, rate_limit))


@main.command()
@click.argument("pages_json", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dump", type=click.Path(path_type=Path, dir_okay=False), help="Write one JSON line per page.")
def accuracy(pages_json: Path, dump: Path | None) -> None:
    """Score metadata extraction on saved pages with expected values (pages.json format)."""
    from pipeline.accuracy import run_accuracy

    sys.exit(run_accuracy(pages_json, dump))
