"""Command line: flags -> settings -> run -> exit code. No pipeline logic lives here.

Exit codes (``pipeline.models.ExitCode``): 0 run completed; 1 some files failed (or `validate` found
problems); 2 usage error (click); 3 configuration error; 4 another run holds the lock; 5 interrupted;
6 a state/history/reports path cannot be used; 7 the network has been down for several runs in a row;
8 `--fail-on` matched (links with those statuses exist); 9 the engine (broker, workers) is unavailable.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline import __version__, _signals
from pipeline.config import Settings
from pipeline.configfile import (
    config_source,
    describe_config,
    is_partial_run,
    load_settings,
    require_config_file,
    require_roots,
    with_overrides,
)
from pipeline.console import setup_logging
from pipeline.errors import ConfigError, PathUnusable
from pipeline.job import run_once
from pipeline.models import ExitCode
from pipeline.report.formats import CiOutput
from pipeline.text import printable
from pipeline.workercli import worker

log = logging.getLogger("pipeline")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:  # imported when a command needs it: `pipeline --help` stays fast
    from pipeline.health.history import HistoryStore


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
    return _or_config_error(lambda: with_overrides(load_settings(config_path), overrides))


def _or_config_error(step: Callable[[], T]) -> T:
    """A configuration problem is one line on standard error and exit 3; nothing was done."""
    try:
        return step()
    except ConfigError as exc:
        click.echo(f"config error: {printable(exc)}", err=True)
        sys.exit(ExitCode.CONFIG_ERROR)


def _logging(settings: Settings, verbose: bool, quiet: bool, log_format: str | None) -> None:
    level = "DEBUG" if verbose else settings.logging.level
    setup_logging(log_format or settings.logging.format, level, quiet)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the distribution (not the clashing PyPI `pipeline`), its version and where it lives."""
    if not value or ctx.resilient_parsing:
        return
    from importlib import metadata

    import pipeline

    try:
        version = metadata.version("link-pipeline")
    except metadata.PackageNotFoundError:
        version = f"{__version__} (not installed as a distribution)"
    click.echo(f"link-pipeline {version} (package `pipeline` at {os.path.dirname(pipeline.__file__)})")
    ctx.exit()


def _regexes(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            re.compile(value)
        except re.error as exc:
            raise click.BadParameter(f"{value!r} is not a regular expression: {exc}", param=param) from None
    return values


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the distribution name, version and install location.",
)
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["compact", "json", "markdown", "junit", "sarif"]),
    help="Print the run's result in this format to standard output (logs stay on standard error).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the --format output (default: compact) to this file instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["dead", "failing", "blocked"]),
    multiple=True,
    help="Exit with code 8 when links with this status exist (repeatable); JUnit and SARIF report them.",
)
@click.option("--exclude", multiple=True, callback=_regexes, help="Skip URLs matching REGEX (repeatable).")
@click.option(
    "--include", multiple=True, callback=_regexes, help="Check only URLs matching REGEX (repeatable)."
)
@click.option(
    "--executor", type=click.Choice(["local", "celery"]), help="Check here, or on `pipeline worker`s."
)
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
    fmt: str | None,
    output: Path | None,
    fail_on: tuple[str, ...],
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    executor: str | None,
    config_path: Path | None,
    verbose: bool,
    quiet: bool,
    log_format: str | None,
) -> None:
    """Check every link of the corpus (PATHS, default: corpus.roots), refresh metadata, write a report."""
    source = config_source(config_path)
    if not dry_run:
        overridden = state_dir is not None and reports_dir is not None
        _or_config_error(partial(require_config_file, source, overridden))
    configured = _settings(config_path, {})
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
            "executor": executor,
        },
    )
    _logging(settings, verbose, quiet, log_format)
    stop = threading.Event()
    _stop_on_signals(stop)
    if _signals.stopped():
        log.warning("stopped by a signal before the run began; nothing was done")
        sys.exit(ExitCode.INTERRUPTED)
    _or_config_error(partial(require_roots, settings, bool(paths)))
    code = run_once(
        settings,
        stop,
        check_only=check_only,
        dry_run=dry_run,
        force=force,
        quiet=quiet,
        config=describe_config(source),
        partial=is_partial_run(paths, configured),
        output=CiOutput(fmt or ("compact" if output else None), output, fail_on, exclude, include),
    )
    sys.exit(code)


def _stop_on_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: finish the file being written, save, exit. A second SIGINT aborts."""

    def handler(signum: int, _frame: object) -> None:
        _signals.note(signum)  # whatever the run returns now, the process exits 5
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
    from pipeline.readpass import collect
    from pipeline.validate import lint

    settings = _settings(config_path, {"corpus.roots": list(paths) or None})
    _logging(settings, verbose, quiet, log_format)
    _signals.exit_on_stop()
    log.info("config: %s", describe_config(config_source(config_path)))
    _or_config_error(partial(require_roots, settings, bool(paths)))
    problems, summary = lint(collect(settings))
    for line in problems:
        click.echo(line)
    click.echo(summary)
    sys.exit(ExitCode.FILES_FAILED if problems else ExitCode.OK)


@main.command()
@click.option("--run", "run_id", help="Run id (default: the latest finished run).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "md", "html", "compact", "markdown", "junit", "sarif"]),
    default="md",
    help="md/markdown, json, html, or a CI format (compact, junit, sarif: dead links fail).",
)
@click.option("--validate", is_flag=True, help="Check the stored report against the schema first (exit 1).")
@_common
def report(
    run_id: str | None,
    fmt: str,
    validate: bool,
    config_path: Path | None,
    verbose: bool,
    quiet: bool,
    log_format: str | None,
) -> None:
    """Re-render a past run's report from the history database to standard output."""
    from pipeline.errors import ReportInvalid
    from pipeline.report.runs import read_stored, render_stored

    settings = _settings(config_path, {})
    _logging(settings, verbose, quiet, log_format)
    _signals.exit_on_stop()
    try:
        document, trend = _read_history(settings, partial(read_stored, run_id, settings, validate=validate))
    except ReportInvalid as exc:
        click.echo(f"error: {printable(exc)}", err=True)
        sys.exit(ExitCode.FILES_FAILED)
    if document is None:
        click.echo(f"no such run: {run_id or 'latest'}", err=True)
        sys.exit(ExitCode.FILES_FAILED)
    click.echo(render_stored(document, trend, fmt), nl=False)


@main.command()
@click.option("--limit", default=30, show_default=True, type=click.IntRange(min=1), help="Runs to list.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_common
def runs(
    limit: int, fmt: str, config_path: Path | None, verbose: bool, quiet: bool, log_format: str | None
) -> None:
    """List past runs, newest first: id, start, mode, kind, totals, exit code (for `report --run ID`)."""
    import json

    from pipeline.report.runs import runs_table

    settings = _settings(config_path, {})
    _logging(settings, verbose, quiet, log_format)
    _signals.exit_on_stop()
    rows = _read_history(settings, lambda store: store.list_runs(limit))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=lambda value: value.isoformat()))
        return
    click.echo(runs_table(rows))


def _read_history(settings: Settings, read: Callable[[HistoryStore], T]) -> T:
    """``read`` on the history opened read-only (reading needs no write access); none or unusable: exit."""
    from pipeline.health.history import HistoryStore

    if settings.state.url is None and not settings.state.database.exists():
        click.echo(f"no history yet: {settings.state.database} does not exist", err=True)
        sys.exit(ExitCode.FILES_FAILED)
    try:
        with HistoryStore(settings.state.database, read_only=True, url=settings.state.url) as store:
            return read(store)
    except PathUnusable as exc:
        click.echo(f"error: {printable(exc)}", err=True)
        sys.exit(ExitCode.PATH_UNUSABLE)


@main.command()
@_common
def schedule(config_path: Path | None, verbose: bool, quiet: bool, log_format: str | None) -> None:
    """Run `refresh` on the cron expression of schedule.cron until stopped (SIGTERM/SIGINT)."""
    from pipeline.scheduler import serve

    source = config_source(config_path)
    _or_config_error(partial(require_config_file, source, False))
    settings = _settings(config_path, {})  # the schedule is validated with the rest of the config
    _logging(settings, verbose, quiet, log_format)
    config = describe_config(source)
    if _signals.stopped():
        log.warning("stopped by a signal before the scheduler started")
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(serve(settings, lambda stop: run_once(settings, stop, quiet=True, config=config)))


main.add_command(worker)


@main.command()
@click.option("--urls", default=5000, show_default=True, help="URLs to check.")
@click.option("--hosts", default=20, show_default=True, help="Loopback addresses serving them.")
@click.option("--latency-ms", default=100.0, show_default=True, help="Server latency per request.")
@click.option("--per-host", default=10, show_default=True, help="Connections per host.")
@click.option("--no-lychee", is_flag=True, help="Do not run lychee for comparison.")
@click.option(
    "--rate-limit", is_flag=True, help="One host answers 429 (Retry-After: 2) to 1% of its requests."
)
@click.option(
    "--check-only",
    "check_only",
    is_flag=True,
    help="Also time the whole `pipeline refresh --check-only` over one article per URL.",
)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --check-only: run the whole command this many times; print the median.",
)
def bench(**options: Any) -> None:
    """Benchmark the link checker against local servers (and lychee, when installed)."""
    from pipeline.tools.bench import run_benchmark

    if options["repeat"] > 1 and not options["check_only"]:
        raise click.UsageError("--repeat times the whole refresh command: use it with --check-only")
    options["with_lychee"] = not options.pop("no_lychee")
    sys.exit(run_benchmark(**options))


@main.command()
@click.argument("pages_json", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dump", type=click.Path(path_type=Path, dir_okay=False), help="Write one JSON line per page.")
def accuracy(pages_json: Path, dump: Path | None) -> None:
    """Score metadata extraction on saved pages with expected values (pages.json format)."""
    from pipeline.tools.accuracy import run_accuracy

    sys.exit(run_accuracy(pages_json, dump))
