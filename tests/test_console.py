"""Console output: log lines (text or JSON) on stderr, and a progress bar only on a terminal."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console

from pipeline.console import Progress, setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--log-format json: each record is one JSON line with level, logger, message and extra fields."""
    setup_logging("json", "INFO", quiet=False)

    logging.getLogger("pipeline.test").info("run %s finished", "r1", extra={"run_id": "r1", "dead": 3})

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "pipeline.test"
    assert entry["message"] == "run r1 finished"
    assert entry["run_id"] == "r1" and entry["dead"] == 3
    assert entry["time"].endswith("Z")


def test_json_format_carries_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception logged in JSON mode keeps its traceback inside the same single line."""
    setup_logging("json", "INFO", quiet=False)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("pipeline.test").exception("stage failed")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "RuntimeError: boom" in json.loads(lines[0])["exception"]


def test_text_format_names_level_and_logger(capsys: pytest.CaptureFixture[str]) -> None:
    """Text lines carry a UTC timestamp, the level, the logger name and the message."""
    setup_logging("text", "DEBUG", quiet=False)

    logging.getLogger("pipeline.test").debug("hello")

    line = capsys.readouterr().err.strip()
    stamp, level, name, message = line.split(" ", 3)
    assert stamp.endswith("Z") and level == "DEBUG" and name == "pipeline.test:" and message == "hello"


def test_quiet_keeps_only_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    """--quiet (for cron) drops info lines but keeps warnings."""
    setup_logging("text", "INFO", quiet=True)
    log = logging.getLogger("pipeline.test")

    log.info("routine")
    log.warning("attention")

    err = capsys.readouterr().err
    assert "routine" not in err
    assert "attention" in err


def test_setup_twice_installs_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """Calling setup_logging again replaces its handler instead of doubling every line."""
    setup_logging("text", "INFO", quiet=False)
    setup_logging("json", "INFO", quiet=False)

    logging.getLogger("pipeline.test").info("once")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "once"


def test_noisy_library_loggers_are_held_to_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx's per-request INFO lines do not flood the log."""
    setup_logging("text", "INFO", quiet=False)

    logging.getLogger("httpx").info("HTTP Request: GET ...")

    assert capsys.readouterr().err == ""


def test_unknown_format_is_refused() -> None:
    """A format other than text or json is an error naming the setting."""
    with pytest.raises(ValueError, match=r"logging\.format"):
        setup_logging("xml", "INFO", quiet=False)


def test_progress_draws_bar_with_rate_and_eta_on_a_terminal() -> None:
    """On a terminal the bar shows the label, done/total, URLs/s and an ETA."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140)

    with Progress(console=console) as progress:
        progress.start(10, "checking links")
        progress.advance(4)
        progress.advance()

    text = out.getvalue()
    assert progress.enabled
    assert "checking links" in text
    assert "5/10" in text
    assert "URLs/s" in text
    assert "ETA" in text


def test_progress_is_silent_when_not_a_terminal() -> None:
    """Non-interactive runs (cron, systemd, pipes) print no bar at all, but still count."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)

    with Progress(console=console) as progress:
        progress.start(3, "checking links")
        progress.advance(3)

    assert not progress.enabled
    assert out.getvalue() == ""
    assert progress.completed == 3


def test_progress_is_silent_when_quiet_on_a_terminal() -> None:
    """--quiet suppresses the bar even on a terminal."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True)

    with Progress(quiet=True, console=console) as progress:
        progress.start(3, "checking links")
        progress.advance(1)

    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("env", "shown"), [({}, False), ({"FORCE_COLOR": "1"}, True), ({"TTY_COMPATIBLE": "1"}, True)]
)
def test_progress_on_stderr_follows_what_rich_calls_a_terminal(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], shown: bool
) -> None:
    """With stderr no terminal the bar is off (rich not asked), unless FORCE_COLOR or TTY_COMPATIBLE=1 say
    otherwise, as rich reads them."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    with Progress() as progress:
        progress.start(2, "checking links")

    assert progress.enabled is shown
