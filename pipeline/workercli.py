"""``pipeline worker``: a thin wrapper around Celery's own worker, for ``executor: celery``.

Reads: ``celery.*`` and ``state.url`` of ``--config`` (everything a check needs arrives with its task, so a
worker and its coordinator always agree). Every other option goes to ``celery worker`` as it is
(``--concurrency``, ``--pool``, ``--loglevel``, ``-n name@%h``, ``-Q`` …).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.configfile import load_settings
from pipeline.errors import ConfigError
from pipeline.models import ExitCode
from pipeline.text import printable


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: config/pipeline.yaml when it exists).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(config_path: Path | None, celery_args: tuple[str, ...]) -> None:
    """Start a worker of the distributed engine; further options go to `celery worker` (try --help)."""
    try:
        settings = load_settings(config_path)
        if settings.state.url is None:
            raise ConfigError(
                "state.url: pipeline worker needs a postgresql://... history shared with the coordinator"
            )
    except ConfigError as exc:
        click.echo(f"config error: {printable(exc)}", err=True)
        sys.exit(ExitCode.CONFIG_ERROR)
    from pipeline.distributed.app import build_app

    app = build_app(settings.celery, settings.state.url)
    app.worker_main(["worker", *celery_args])
