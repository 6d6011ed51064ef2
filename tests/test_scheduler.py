"""The schedule daemon: cron parsing, one run at a time, misfire grace, clean stop on signals; unit files."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pipeline.config import ScheduleSettings, Settings
from pipeline.cron import build_trigger
from pipeline.models import ExitCode
from pipeline.scheduler import serve

REPO = Path(__file__).resolve().parent.parent
THURSDAY = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _fire_times(cron: str, count: int, **kwargs: object) -> list[datetime]:
    trigger = build_trigger(ScheduleSettings(cron=cron, **kwargs))  # type: ignore[arg-type]
    times: list[datetime] = []
    previous = None
    now = THURSDAY
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        times.append(nxt)
        previous, now = nxt, nxt
    return times


def test_numeric_sunday_means_sunday() -> None:
    """Crontab '0 3 * * 0' fires on Sunday at 03:00, not on Monday as APScheduler's from_crontab would."""
    (first,) = _fire_times("0 3 * * 0", 1)

    assert first.weekday() == 6
    assert (first.hour, first.minute) == (3, 0)
    assert first > THURSDAY


def test_seven_is_sunday_too() -> None:
    """Day 7 is Sunday, as in standard cron."""
    assert {t.weekday() for t in _fire_times("30 1 * * 7", 3)} == {6}


def test_numeric_range_keeps_cron_meaning() -> None:
    """'1-5' is Monday to Friday."""
    assert {t.weekday() for t in _fire_times("0 3 * * 1-5", 10)} == {0, 1, 2, 3, 4}


def test_step_over_all_days_counts_from_sunday() -> None:
    """'*/2' is Sunday, Tuesday, Thursday, Saturday (cron counts from Sunday)."""
    assert {t.weekday() for t in _fire_times("0 3 * * */2", 12)} == {6, 1, 3, 5}


def test_range_ending_at_seven_wraps_to_sunday() -> None:
    """'5-7' is Friday, Saturday and Sunday."""
    assert {t.weekday() for t in _fire_times("0 3 * * 5-7", 9)} == {4, 5, 6}


def test_day_names_pass_through() -> None:
    """Day names mean the same in cron and APScheduler."""
    assert {t.weekday() for t in _fire_times("0 3 * * sat,sun", 6)} == {5, 6}


def test_timezone_applies() -> None:
    """The cron hour is read in schedule.timezone (03:00 in Paris in winter is 02:00 UTC)."""
    (first,) = _fire_times("0 3 * * *", 1, timezone="Europe/Paris")

    assert first.astimezone(UTC).hour == 2


def test_jitter_is_passed_to_the_trigger() -> None:
    """schedule.jitter becomes the trigger's jitter (from_crontab cannot take one)."""
    assert build_trigger(ScheduleSettings(jitter=120)).jitter == 120
    assert build_trigger(ScheduleSettings(jitter=0)).jitter is None


@pytest.mark.parametrize(
    ("cron", "timezone", "setting"),
    [
        ("0 3 1 * mon", "UTC", "schedule.cron"),
        ("0 3 * * 8", "UTC", "schedule.cron"),
        ("0 3 * * 5-2", "UTC", "schedule.cron"),
        ("61 3 * * *", "UTC", "schedule.cron"),
        ("0 3 * * *", "Mars/Olympus", "schedule.timezone"),
    ],
)
def test_unusable_schedule_names_the_setting(cron: str, timezone: str, setting: str) -> None:
    """A cron line or time zone that cannot be honoured raises ValueError naming the setting."""
    with pytest.raises(ValueError, match=setting.replace(".", r"\.")):
        build_trigger(ScheduleSettings(cron=cron, timezone=timezone))


def _settings(grace: int = 3600) -> Settings:
    return Settings(schedule=ScheduleSettings(misfire_grace_time=grace))


def test_runs_never_overlap_and_signal_reaches_the_run(caplog: pytest.LogCaptureFixture) -> None:
    """With a trigger faster than a run, runs never overlap; SIGTERM sets the run's Event and stops."""
    active = 0
    peak = 0
    runs = 0
    guard = threading.Lock()
    saw_stop = threading.Event()

    def run_once(stop: threading.Event) -> int:
        nonlocal active, peak, runs
        with guard:
            active += 1
            runs += 1
            peak = max(peak, active)
            this_run = runs
        try:
            if this_run == 3:
                os.kill(os.getpid(), signal.SIGTERM)
                if stop.wait(5):
                    saw_stop.set()
                return int(ExitCode.INTERRUPTED)
            time.sleep(0.3)
            return int(ExitCode.OK)
        finally:
            with guard:
                active -= 1

    previous = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.INFO):
        code = serve(_settings(), run_once, trigger=IntervalTrigger(seconds=0.1))

    assert code == ExitCode.INTERRUPTED
    assert saw_stop.is_set()
    assert peak == 1
    assert runs == 3
    assert signal.getsignal(signal.SIGTERM) is previous
    summaries = [r for r in caplog.records if r.getMessage().startswith("scheduled run finished")]
    assert [getattr(r, "exit_code", None) for r in summaries] == [0, 0, 5]
    assert any("previous run is still going" in r.getMessage() for r in caplog.records)


def test_late_run_within_grace_still_starts() -> None:
    """A run due 5 s ago starts when misfire_grace_time allows (APScheduler's default 1 s would skip)."""
    calls: list[bool] = []

    def run_once(stop: threading.Event) -> int:
        calls.append(stop.is_set())
        return int(ExitCode.OK)

    due = datetime.now(UTC) - timedelta(seconds=5)
    code = serve(_settings(grace=3600), run_once, trigger=DateTrigger(run_date=due))

    assert code == ExitCode.OK
    assert calls == [False]


def test_run_later_than_grace_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A run late by more than misfire_grace_time is skipped, with a warning saying so."""
    calls: list[bool] = []

    def run_once(stop: threading.Event) -> int:
        calls.append(True)
        return int(ExitCode.OK)

    due = datetime.now(UTC) - timedelta(seconds=30)
    with caplog.at_level(logging.WARNING):
        serve(_settings(grace=2), run_once, trigger=DateTrigger(run_date=due))

    assert calls == []
    assert any("misfire_grace_time" in r.getMessage() for r in caplog.records)


def test_a_failing_run_does_not_stop_the_daemon(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in one run is logged and the next run still happens."""
    calls = 0

    def run_once(stop: threading.Event) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        os.kill(os.getpid(), signal.SIGINT)
        stop.wait(5)
        return int(ExitCode.INTERRUPTED)

    with caplog.at_level(logging.INFO):
        code = serve(_settings(), run_once, trigger=IntervalTrigger(seconds=0.05))

    assert calls == 2
    assert code == ExitCode.INTERRUPTED
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)


_DAEMON = """
import sys, threading, time
from pathlib import Path
from apscheduler.triggers.interval import IntervalTrigger
from pipeline.config import Settings
from pipeline.console import setup_logging
from pipeline.scheduler import serve

out = Path(sys.argv[1])

def run_once(stop: threading.Event) -> int:
    print("run started", flush=True)
    for n in range(200):
        if stop.is_set():
            out.with_suffix(".state").write_text("saved")
            return 5
        with out.open("a") as fh:  # one whole "article" per line, never half
            fh.write(f"article {n} begin ")
            time.sleep(0.01)
            fh.write("end\\n")
    return 0

setup_logging("json", "INFO", quiet=False)
sys.exit(serve(Settings(), run_once, trigger=IntervalTrigger(seconds=0.05)))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_current_article_saves_state_and_exits(tmp_path: Path, sig: signal.Signals) -> None:
    """In a real daemon process, SIGTERM/SIGINT lets the article being written finish, saves, exits 5."""
    out = tmp_path / "written.txt"
    with subprocess.Popen(
        [sys.executable, "-c", _DAEMON, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "run started"
        time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)

    assert proc.returncode == ExitCode.INTERRUPTED
    lines = out.read_text().splitlines()
    assert 0 < len(lines) < 200
    assert all(line.endswith("end") for line in lines)
    assert out.with_suffix(".state").read_text() == "saved"
    assert "scheduled run finished: exit code 5 (INTERRUPTED)" in err
    assert "Traceback" not in err


_UNITS = ("link-pipeline.service", "link-pipeline.timer")
# CI installs systemd (.ci/run) and sets CI=true: there a missing systemd-analyze fails, not skips.
_NEEDS_SYSTEMD = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"), reason="no systemd-analyze"
)


def _verify_units(tmp_path: Path, edit: tuple[str, str] = ("", "")) -> list[str]:
    """Copy the units with /srv paths under tmp_path (verify checks ExecStart exists); return complaints."""
    fake_pipeline = tmp_path / ".venv" / "bin" / "pipeline"
    fake_pipeline.parent.mkdir(parents=True)
    fake_pipeline.write_text("#!/bin/sh\nexit 0\n")
    fake_pipeline.chmod(0o755)
    for folder in ("seeds", "state", "reports"):
        (tmp_path / folder).mkdir()
    for name in _UNITS:
        text = (REPO / "cron" / name).read_text().replace("/srv/link-pipeline", str(tmp_path))
        if edit[0]:
            text = text.replace(*edit)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in _UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


@_NEEDS_SYSTEMD
def test_systemd_units_pass_verify(tmp_path: Path) -> None:
    """The .service and .timer pass `systemd-analyze verify` with no complaint at all."""
    assert _verify_units(tmp_path) == []


@_NEEDS_SYSTEMD
def test_systemd_verify_catches_a_misspelled_directive(tmp_path: Path) -> None:
    """Control: verify does run here, since a misspelled hardening key in a copy is reported."""
    problems = _verify_units(tmp_path, ("NoNewPrivileges=", "NoNewPrivilegez="))

    assert any("NoNewPrivilegez" in line for line in problems)


def test_crontab_line_is_well_formed() -> None:
    """The crontab example has five schedule fields, takes the lock-aware command and uses --quiet."""
    lines = [
        line
        for line in (REPO / "cron" / "crontab").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    build_trigger(ScheduleSettings(cron=" ".join(fields[:5])))
    assert "pipeline refresh" in fields[5]
    assert "--quiet" in fields[5]


def test_config_file_documents_weekdays_as_the_scheduler_reads_them() -> None:
    """config/pipeline.yaml says numeric weekday 0 (and 7) is Sunday, which is what the trigger does."""
    text = (Path(__file__).resolve().parent.parent / "config" / "pipeline.yaml").read_text(encoding="utf-8")
    schedule = text[text.index("\nschedule:") :]
    comments = " ".join(line.strip().lstrip("#").strip() for line in schedule.splitlines() if "#" in line)

    assert "day-of-week `0` and `7` are Sunday" in comments
    assert "`0` would mean Monday" not in comments and "`1` is Monday" in comments
    assert {t.weekday() for t in _fire_times("0 3 * * 0", 2)} == {6}
    assert {t.weekday() for t in _fire_times("0 3 * * 7", 2)} == {6}
