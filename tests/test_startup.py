"""What a refresh loads before its first request: start-up time is part of what a user waits for."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import config
from pipeline.config import ScheduleSettings
from pipeline.cron import build_trigger


def test_the_refresh_path_loads_neither_apscheduler_nor_jinja() -> None:
    """Settings with the built-in schedule, the CLI and the runner load no APScheduler and no Jinja."""
    probe = (
        "import sys; from pipeline.configfile import parse_settings; parse_settings({}); "
        "import pipeline.cli, pipeline.runner; "
        "print(' '.join(name for name in ('apscheduler', 'jinja2') if name in sys.modules))"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # no test sitecustomize
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert loaded.stdout.split() == []


def test_the_refresh_path_leaves_the_http_stack_and_the_parser_for_later() -> None:
    """The CLI, the runner and the check's hand-over load no aiohttp or httpx (the check's process does),
    no HTML parser or image reader (the digest's thread does, at the first page or image), and no rich
    for a progress bar that is not shown (stderr is no terminal)."""
    probe = (
        "import sys; import pipeline.cli, pipeline.runner, pipeline.checkprocess, pipeline.check.soft404; "
        "from pipeline.console import Progress; bar = Progress(); bar.start(1, 'checking'); bar.close(); "
        "heavy = ('aiohttp', 'httpx', 'selectolax', 'charset_normalizer', 'imagesize', 'rich'); "
        "print(' '.join(name for name in heavy if name in sys.modules))"
    )
    # No test sitecustomize; no FORCE_COLOR or TTY_COMPATIBLE from a CI runner (rich would then show a bar).
    unset = {"PYTHONPATH", "FORCE_COLOR", "TTY_COMPATIBLE"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert loaded.stdout.split() == []


def test_the_check_process_starts_before_the_records_are_loaded() -> None:
    """``python -m pipeline refresh`` starts the check's process first thing: the module that starts it
    loads none of the pipeline's records (``pipeline.models``) before the child is on its way."""
    probe = "import sys; import pipeline.checkprocess; print('pipeline.models' in sys.modules)"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # no test sitecustomize
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert loaded.stdout.split() == ["False"]


def test_the_built_in_schedule_is_the_one_known_to_build() -> None:
    """Loading skips building the built-in schedule's trigger: it is the default and it builds."""
    built_in = ScheduleSettings()

    assert (built_in.cron, built_in.timezone, built_in.jitter) == config._BUILT_IN_SCHEDULE
    assert build_trigger(built_in).fields
