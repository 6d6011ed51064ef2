"""Runs that must say so: unusable paths, runs that checked nothing, outage streaks, partial and
interrupted runs, SIGTERM at any moment, `pipeline runs`, and counts that agree."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from localsite import LocalSite, closed_port, make_settings
from unprivileged import run_cli_unprivileged

from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, RunOptions
from pipeline.report.schema import validate_report
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _config(folder: Path, corpus: Path, **extra: object) -> Path:
    data = {
        "corpus": {"roots": [str(corpus)]},
        "http": {
            "allow_networks": ["127.0.0.0/8"],
            "connect_timeout": 2,
            "read_timeout": 5,
            "total_timeout": 10,
        },
        "retry": {"attempts": 1},
        "state": {"dir": str(folder / "state")},
        "reports": {"dir": str(folder / "reports")},
        **extra,
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(0o644)
    return path


def _offline_corpus(folder: Path) -> Path:
    """One article whose only URL is not checkable: a run needs no network and completes."""
    corpus = folder / "c"
    corpus.mkdir()
    corpus.chmod(0o755)
    article = corpus / "a.md"
    article.write_text('---\ntitle: a\nwebUrl: "mailto:x@example.org"\n---\n', encoding="utf-8")
    article.chmod(0o666)
    return corpus


def _runs(state: Path) -> list[dict[str, object]]:
    with HistoryStore(state / "history.sqlite3") as store:
        return store.list_runs(100)


def _one_line_error(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


# ------------------------------------------------------------------------------ paths that cannot be used


def test_unwritable_state_folder_exits_6_naming_the_lock(shared_dir: Path) -> None:
    """A state/ the user cannot write stops the run with exit 6 and one line naming the lock file."""
    corpus = _offline_corpus(shared_dir)
    (shared_dir / "state").mkdir(mode=0o755)  # root's; `nobody` cannot create the lock in it
    (shared_dir / "reports").mkdir(mode=0o777)
    (shared_dir / "reports").chmod(0o777)

    code, _, err = run_cli_unprivileged(["refresh", "--config", str(_config(shared_dir, corpus))], shared_dir)

    assert code == ExitCode.PATH_UNUSABLE, err
    _one_line_error(err, str(shared_dir / "state" / "pipeline.lock"), "Permission denied", "state.dir")
    assert os.listdir(shared_dir / "reports") == []


def test_read_only_history_exits_6_naming_the_database(shared_dir: Path) -> None:
    """A history.sqlite3 the user cannot write stops the run with exit 6 and one line naming it."""
    corpus = _offline_corpus(shared_dir)
    state = shared_dir / "state"
    HistoryStore(state / "history.sqlite3").close()  # root's, mode 0644: read-only for `nobody`
    state.chmod(0o777)
    (shared_dir / "reports").mkdir(mode=0o777)
    (shared_dir / "reports").chmod(0o777)

    code, _, err = run_cli_unprivileged(["refresh", "--config", str(_config(shared_dir, corpus))], shared_dir)

    assert code == ExitCode.PATH_UNUSABLE, err
    _one_line_error(err, str(state / "history.sqlite3"), "readonly database")
    assert "read 1 articles" not in err  # found before the corpus is read
    assert os.listdir(shared_dir / "reports") == []


def test_unwritable_reports_exits_6_after_saving_the_history(shared_dir: Path) -> None:
    """A reports/ the user cannot write: exit 6 after the whole check, and the run's history is saved."""
    corpus = _offline_corpus(shared_dir)
    (shared_dir / "state").mkdir(mode=0o777)
    (shared_dir / "state").chmod(0o777)
    (shared_dir / "reports").mkdir(mode=0o755)  # root's

    code, _, err = run_cli_unprivileged(["refresh", "--config", str(_config(shared_dir, corpus))], shared_dir)

    assert code == ExitCode.PATH_UNUSABLE, err
    _one_line_error(err, str(shared_dir / "reports"), "cannot write the report", "pipeline report --run")
    [run] = _runs(shared_dir / "state")
    assert run["finished_at"] is not None and run["exit_code"] == ExitCode.PATH_UNUSABLE
    with HistoryStore(shared_dir / "state" / "history.sqlite3") as store:
        stored = store.get_report(str(run["id"]))
    assert stored is not None and stored["run"]["exit_code"] == ExitCode.PATH_UNUSABLE


# ------------------------------------------------------------------------------ runs that checked nothing


def test_missing_root_is_a_config_error_that_records_nothing(tmp_path: Path) -> None:
    """A corpus root that does not exist exits 3 before any run is recorded; `latest` stays."""
    corpus = _offline_corpus(tmp_path)
    config = _config(tmp_path, corpus)
    assert _cli("refresh", "--config", str(config), cwd=tmp_path).returncode == 0
    latest = os.readlink(tmp_path / "reports" / "latest")

    result = _cli("refresh", str(tmp_path / "nope"), "--config", str(config), cwd=tmp_path)
    config.write_text(config.read_text().replace(str(corpus), str(tmp_path / "gone")))
    from_config = _cli("refresh", "--config", str(config), cwd=tmp_path)
    validate = _cli("validate", "--config", str(config), cwd=tmp_path)

    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert f"PATH argument: '{tmp_path / 'nope'}' does not exist" in result.stderr
    assert from_config.returncode == ExitCode.CONFIG_ERROR
    assert f"corpus.roots: '{tmp_path / 'gone'}' does not exist" in from_config.stderr
    assert validate.returncode == ExitCode.CONFIG_ERROR and "does not exist" in validate.stderr
    assert len(_runs(tmp_path / "state")) == 1
    assert os.readlink(tmp_path / "reports" / "latest") == latest


def test_empty_corpus_warns_that_nothing_was_checked(tmp_path: Path) -> None:
    """A root with no article in it is a warning that names the root and the patterns."""
    corpus = tmp_path / "empty"
    corpus.mkdir()

    result = _cli("refresh", "-q", "--config", str(_config(tmp_path, corpus)), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"WARNING pipeline: no article found under {corpus} matching *.md, *.txt" in result.stderr


def test_every_run_logs_the_configuration_file_it_loaded(tmp_path: Path) -> None:
    """The first line of a run names the config file (absolute) and the state and reports folders."""
    corpus = _offline_corpus(tmp_path)
    config = _config(tmp_path, corpus)

    result = _cli("refresh", "--config", str(config), cwd=tmp_path)

    first = result.stderr.splitlines()[0]
    assert f"config: {config.resolve()}; corpus {corpus}; state {tmp_path / 'state'}" in first


def test_refresh_elsewhere_without_a_config_refuses_and_creates_nothing(tmp_path: Path) -> None:
    """From a folder without config/pipeline.yaml and no --config, refresh exits 3 and creates nothing."""
    corpus = _offline_corpus(tmp_path)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()

    result = _cli("refresh", str(corpus), cwd=elsewhere)
    dry = _cli("refresh", "--dry-run", str(corpus), cwd=elsewhere)

    assert result.returncode == ExitCode.CONFIG_ERROR
    assert f"config/pipeline.yaml does not exist in {elsewhere}" in result.stderr
    assert "--config" in result.stderr
    assert dry.returncode == 0, dry.stderr  # a dry run writes nothing, so the defaults are harmless
    assert "built-in defaults (no config/pipeline.yaml" in dry.stderr
    assert os.listdir(elsewhere) == []


# ------------------------------------------------------------------------------------- outage streak


def _outage_world(tmp_path: Path) -> Settings:
    corpus = tmp_path / "c"
    corpus.mkdir()
    lines = [f'  - webUrl: "http://127.0.0.{20 + i}:{closed_port(f"127.0.0.{20 + i}")}/x"' for i in range(3)]
    (corpus / "a.md").write_text("---\ntitle: a\nrelated:\n" + "\n".join(lines) + "\n---\n", encoding="utf-8")
    return make_settings(tmp_path, corpus={"roots": [str(corpus)]}, retry={"attempts": 1})


def _night(settings: Settings, when: datetime, **options: object) -> tuple[ExitCode, dict[str, object]]:
    outcome = refresh(settings, RunOptions(now=lambda: when, show_progress=False, **options), io.StringIO())  # type: ignore[arg-type]
    return outcome.exit_code, outcome.report.to_json()


def test_third_outage_night_in_a_row_exits_7_saying_since_when(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Outage runs are counted; the third in a row (health.outage.max_consecutive) exits 7 with the start."""
    settings = _outage_world(tmp_path)
    codes = []
    with caplog.at_level(logging.ERROR, logger="pipeline"):
        for night in range(3):
            code, report = _night(settings, DAY0 + timedelta(days=night))
            codes.append(code)

    assert codes == [ExitCode.OK, ExitCode.OK, ExitCode.OUTAGE_STREAK]
    run = report["run"]
    assert isinstance(run, dict) and run["outage_streak"] == {"runs": 3, "since": DAY0.isoformat()}
    assert run["exit_code"] == ExitCode.OUTAGE_STREAK
    validate_report(report)
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"network has been down for 3 runs in a row, since {DAY0.isoformat()}" in message


def test_partial_runs_neither_count_nor_break_an_outage_streak(tmp_path: Path) -> None:
    """Partial outage runs are not nights: two nights + partial runs between them are still a streak of 2."""
    settings = _outage_world(tmp_path)
    codes = [_night(settings, DAY0)[0], _night(settings, DAY0 + timedelta(hours=1), partial=True)[0]]
    codes.append(_night(settings, DAY0 + timedelta(hours=2), partial=True)[0])
    code, report = _night(settings, DAY0 + timedelta(days=1))

    assert codes == [ExitCode.OK] * 3 and code == ExitCode.OK
    run = report["run"]
    assert isinstance(run, dict) and run["outage_streak"] == {"runs": 2, "since": DAY0.isoformat()}


# ------------------------------------------------------------------------------ partial and interrupted


def test_partial_run_is_marked_and_does_not_count_or_replace_latest(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """A run on some paths is `partial` in history and report; its 404 is not counted; `latest` stays."""
    local_site.route("/ok", status=200)
    local_site.route("/gone", status=404)
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.md").write_text(f'---\ntitle: a\nwebUrl: "{local_site.url("/gone")}"\n---\n')
    (corpus / "b.md").write_text(f'---\ntitle: b\nwebUrl: "{local_site.url("/ok")}"\n---\n')
    raw = (corpus / "a.md").read_bytes()
    # One hard failure is enough for `dead` on a night: a partial run must not be that night.
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={"hard": {"runs": 1, "days": 0}},
        metadata={"enabled": False},
    )
    local_site.route("/gone", status=200)
    _night(settings, DAY0)
    complete = os.readlink(tmp_path / "reports" / "latest")
    local_site.route("/gone", status=404)
    partial_settings = settings.model_copy(
        update={"corpus": settings.corpus.model_copy(update={"roots": [corpus / "a.md"]})}
    )

    code, report = _night(partial_settings, DAY0 + timedelta(days=1), partial=True, force=True)

    assert code == ExitCode.OK
    run = report["run"]
    assert isinstance(run, dict) and run["kind"] == "partial"
    validate_report(report)
    [link] = [lnk for lnk in report["links"] if isinstance(lnk, dict) and lnk["url"].endswith("/gone")]  # type: ignore[attr-defined]
    assert link["status"] == "failing" and "not counted toward dead" in link["reason"]
    assert (corpus / "a.md").read_bytes() == raw  # not flagged
    with HistoryStore(settings.state.database) as store:
        history = store.load([local_site.url("/gone")])[local_site.url("/gone")]
        kinds = [row["kind"] for row in store.list_runs(10)]
    assert history.consecutive_failures == 0 and str(history.status) == "ok"
    assert kinds == ["partial", "complete"]
    assert os.readlink(tmp_path / "reports" / "latest") == complete
    assert (tmp_path / "reports" / str(run["id"]) / "report.md").read_text().count("Not a complete run") == 1


def test_path_arguments_make_a_partial_run_in_the_history(tmp_path: Path) -> None:
    """`pipeline refresh PATH` on less than the configured roots records a partial run; `runs` shows it."""
    corpus = _offline_corpus(tmp_path)
    (corpus / "b.md").write_text("---\ntitle: b\n---\n", encoding="utf-8")
    config = _config(tmp_path, corpus)
    assert _cli("refresh", "--config", str(config), cwd=tmp_path).returncode == 0
    assert _cli("refresh", str(corpus / "b.md"), "--config", str(config), cwd=tmp_path).returncode == 0
    assert _cli("refresh", str(corpus), "--config", str(config), cwd=tmp_path).returncode == 0

    listed = _cli("runs", "--config", str(config), cwd=tmp_path)

    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "started",
        "(UTC)",
        "mode",
        "kind",
        "articles",
        "urls",
        "checked",
        "dead",
        "failing",
        "exit",
    ]
    assert [line.split()[4] for line in lines[1:]] == ["complete", "partial", "complete"]
    assert all(line.split()[-1] == "0" for line in lines[1:])
    assert [line.split()[5] for line in lines[1:]] == ["2", "1", "2"]  # articles read
    ids = [run["id"] for run in _runs(tmp_path / "state")]
    assert [line.split()[0] for line in lines[1:]] == ids
    report = _cli("report", "--run", str(ids[1]), "--config", str(config), cwd=tmp_path)
    assert report.returncode == 0 and "Not a complete run" in report.stdout


def _slow_corpus(tmp_path: Path, site: LocalSite) -> Path:
    site.route("/slow", delay=30, body=b"<html><head><title>t</title></head></html>")
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"a{i}.md").write_text(f'---\ntitle: "{i}"\nwebUrl: "{site.url("/slow")}?{i}"\n---\n')
    return corpus


def test_interrupted_run_is_marked_and_keeps_latest(tmp_path: Path, local_site: LocalSite) -> None:
    """SIGTERM mid-check: `interrupted` in history and report; `latest` stays on the complete run."""
    offline = tmp_path / "o"
    offline.mkdir()
    config = _config(tmp_path, _offline_corpus(offline))
    assert _cli("refresh", "--config", str(config), cwd=tmp_path).returncode == 0
    latest = os.readlink(tmp_path / "reports" / "latest")
    _config(tmp_path, _slow_corpus(tmp_path, local_site))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "--config", str(config)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while local_site.count("/slow") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == ExitCode.INTERRUPTED, stderr
    newest = _runs(tmp_path / "state")[0]
    assert newest["kind"] == "interrupted" and newest["exit_code"] == ExitCode.INTERRUPTED
    report = json.loads((tmp_path / "reports" / str(newest["id"]) / "report.json").read_text())
    assert report["run"]["kind"] == "interrupted"
    assert os.readlink(tmp_path / "reports" / "latest") == latest


# -------------------------------------------------------------------------------- SIGTERM at any moment


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


_PF_EXITING = 0x4  # the kernel's task flag once the process has called exit() and is being torn down


def _alive(pid: int) -> bool:
    """Running and not yet exiting by itself: a signal sent now reaches a live process.

    A process that has already called ``_exit`` is no zombie yet while the kernel tears it down; a signal
    then is discarded by the kernel, whatever the program does, so such a moment does not count.
    """
    if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    flags = int(stat.rsplit(")", 1)[1].split()[6])  # field 9, counted after the command name
    return not flags & _PF_EXITING


def _start_run(config: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "--config", str(config)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _terminate_if_alive(pid: int) -> bool:
    """SIGTERM the process where it is now, unless it is already exiting; whether it was sent.

    The process is frozen (SIGSTOP) while we look, so "still running" and the signal are one moment.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "TZX":
            time.sleep(0.0005)
        alive = _alive(pid)
        if alive:
            os.kill(pid, signal.SIGTERM)
        return alive
    finally:
        os.kill(pid, signal.SIGCONT)


def test_sigterm_during_start_up_exits_5(tmp_path: Path) -> None:
    """SIGTERM at several moments of start-up (imports, config, lock), before the run's own handler: 5."""
    config = _config(tmp_path, _offline_corpus(tmp_path))
    sent = 0
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3):
        process = _start_run(config, tmp_path)
        deadline = time.monotonic() + 10
        while not _handles_sigterm(process.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        if _terminate_if_alive(process.pid):
            sent += 1
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == ExitCode.INTERRUPTED, (delay, stderr)
            assert "Traceback" not in stderr
        else:
            process.communicate(timeout=30)
    assert sent >= 4


def test_sigterm_at_exit_exits_5(tmp_path: Path) -> None:
    """SIGTERM after the run's last log line, while the process is exiting, gives exit code 5, never -15.

    The one moment that may give 0 is the one README names: the microseconds between the exit path's last
    look at the signals and the kernel tearing the process down (the run had finished; the signal is lost).
    The test's signal follows the last log line closely, so it lands there now and then: a 0 is allowed,
    death by the signal (the bug this guards against) or any other code is not, and most signals give 5.
    """
    config = _config(tmp_path, _offline_corpus(tmp_path))
    codes: list[int] = []
    for _ in range(20):
        process = _start_run(config, tmp_path)
        assert process.stderr is not None
        for line in process.stderr:
            if ": 1 articles, 1 URLs" in line:  # the one-line summary: the last thing a run logs
                break
        sent = _terminate_if_alive(process.pid)
        _, stderr = process.communicate(timeout=30)
        assert "Traceback" not in stderr
        if sent:
            codes.append(process.returncode)
            if len(codes) == 4:
                break
    assert codes and set(codes) <= {ExitCode.INTERRUPTED, 0}, codes
    assert codes.count(ExitCode.INTERRUPTED) >= 1, codes


def test_sigterm_mid_check_exits_5(tmp_path: Path, local_site: LocalSite) -> None:
    """SIGTERM while requests are in flight stops the run with exit 5 within seconds."""
    config = _config(tmp_path, _slow_corpus(tmp_path, local_site))
    process = _start_run(config, tmp_path)
    deadline = time.monotonic() + 20
    while local_site.count("/slow") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == ExitCode.INTERRUPTED, stderr


# ------------------------------------------------------------------------------------------ trend chart


def _chromium_dom(page: Path, profile: Path) -> str:
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


def _drawn_bars(dom: str) -> list[tuple[str, str]]:
    """(label, tooltip) of each bar of the trend chart, as the browser parsed them."""
    from selectolax.lexbor import LexborHTMLParser

    bars = []
    for bar in LexborHTMLParser(dom).css("svg.chart g.bar"):
        label = bar.css_first("text")
        title = bar.css_first("title")
        bars.append((label.text() if label else "", title.text() if title else ""))
    return bars


# CI installs chromium (.ci/run) and sets CI=true, so there a missing browser fails instead of skipping.
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"), reason="chromium is not installed"
)
def test_trend_chart_in_chromium_has_dates_and_stops_at_the_run_shown(tmp_path: Path) -> None:
    """In Chromium, the chart of a run's report.html has a date label and tooltip per night, and
    `pipeline report --run FIRST --format html` draws only the first run."""
    corpus = _offline_corpus(tmp_path)
    config = _config(tmp_path, corpus)
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    ids = [str(_night(settings, DAY0 + timedelta(days=night))[1]["run"]["id"]) for night in range(3)]  # type: ignore[index]

    latest = _drawn_bars(_chromium_dom(tmp_path / "reports" / "latest" / "report.html", tmp_path / "p1"))
    first_html = _cli("report", "--run", ids[0], "--format", "html", "--config", str(config), cwd=tmp_path)
    (tmp_path / "first.html").write_text(first_html.stdout, encoding="utf-8")
    first = _drawn_bars(_chromium_dom(tmp_path / "first.html", tmp_path / "p2"))

    assert [label for label, _ in latest] == ["11-01", "11-02", "11-03"]
    for (_, tooltip), run_id, night in zip(latest, ids, range(3), strict=True):
        assert tooltip.startswith(f"{run_id} — 2026-11-0{night + 1} 03:00 UTC: ok "), tooltip
        assert "—  —" not in tooltip and "— —" not in tooltip
    assert len(first) == 1 and first[0][0] == "11-01" and first[0][1].startswith(ids[0])


# ------------------------------------------------------------------------------------ counts that agree


def test_plan_log_summary_and_report_count_urls_alike(tmp_path: Path, local_site: LocalSite) -> None:
    """One definition per count: the dry-run plan, the check log line, the summary and report.json agree."""
    local_site.route("/a", status=200)
    local_site.route("/b", status=200)
    corpus = tmp_path / "c"
    corpus.mkdir()
    shared = f'webUrl: "{local_site.url("/a")}"'
    (corpus / "one.md").write_text(f'---\ntitle: 1\n{shared}\noriginalUrl: "{local_site.url("/b")}"\n---\n')
    (corpus / "two.md").write_text(f'---\ntitle: 2\n{shared}\noriginalUrl: "htp:/typo"\n---\n')
    (corpus / "three.md").write_text(f'---\ntitle: 3\nwebUrl: "{local_site.url("/skip")}"\n---\n')
    config = _config(tmp_path, corpus, links={"exclude": ["/skip$"]}, metadata={"enabled": False})

    plan = _cli("refresh", "--dry-run", "--config", str(config), cwd=tmp_path)
    first = _cli("refresh", "--config", str(config), cwd=tmp_path)
    second = _cli("refresh", "--config", str(config), cwd=tmp_path)

    assert (
        "plan: 3 articles, 4 unique URLs on 1 hosts; 2 due for a check, 0 not due, 1 excluded, 1 invalid"
        in (plan.stdout)
    )
    assert "checked 2 of 4 URLs (0 not due, 1 excluded, 1 invalid)" in first.stderr
    assert ": 3 articles, 4 URLs, 2 checked (" in first.stderr
    assert "checked 0 of 4 URLs (2 not due, 1 excluded, 1 invalid)" in second.stderr
    assert ": 3 articles, 4 URLs, 0 checked (" in second.stderr
    totals = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text())["totals"]
    assert (totals["urls"], totals["checked"], totals["skipped"], totals["invalid"]) == (4, 0, 1, 1)


# ------------------------------------------------------------------------------ dry run at a terminal

PAGE = (
    b"<html><head><title>T</title><meta property='og:description' "
    b"content='Local officials approved the new riverside park after two years of debate.'></head></html>"
)


# CI installs tmux (.ci/run) and sets CI=true, so there a missing tmux fails instead of skipping.
@pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed")
def test_dry_run_in_a_terminal_keeps_the_diff_whole_and_colored(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """At a terminal (tmux), the progress bar never overwrites a diff line nor comes back after the diffs,
    and the diff is colored; through a pipe it has no escape codes."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(6):
        local_site.route(f"/p{i}", body=PAGE, headers={"Content-Type": "text/html"}, delay=0.3)
        (corpus / f"a{i}.md").write_text(
            f'---\ntitle: "{i}"\nexcerpt: ""\nwebUrl: "{local_site.url(f"/p{i}")}"\n---\nbody\n'
        )
    config = _config(tmp_path, corpus, http={"allow_networks": ["127.0.0.0/8"], "per_host_concurrency": 1})
    socket = f"pipeline-test-{os.getpid()}"
    run = f"{sys.executable} -m pipeline refresh --dry-run --config {config}"
    command = f"cd {tmp_path} && {run}; echo END-OF-RUN; sleep 60"  # the pane stays until it is read
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "150", "-y", "50", command], check=True)
    try:
        deadline = time.monotonic() + 30
        screen = ""
        while "END-OF-RUN" not in screen and time.monotonic() < deadline:
            time.sleep(0.2)
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-S", "-500"], capture_output=True, text=True
            ).stdout
        colored = subprocess.run(
            [*tmux, "capture-pane", "-p", "-e", "-S", "-500"], capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    piped = _cli("refresh", "--dry-run", "--config", str(config), cwd=tmp_path)

    lines = screen.splitlines()
    headers = [i for i, line in enumerate(lines) if "--- a/" in line]
    assert len(headers) == 6 and all(lines[i].startswith("--- a/") for i in headers), screen
    bars = [i for i, line in enumerate(lines) if line.startswith("checking links")]
    assert len(bars) == 1 and bars[0] < headers[0], screen
    assert "6/6" in lines[bars[0]]
    assert "\x1b[32m+excerpt: " in colored and "\x1b[31m-excerpt: " in colored
    assert "+excerpt: " in piped.stdout and "\x1b[" not in piped.stdout


def test_signal_handlers_are_installed_before_any_heavy_import() -> None:
    """Importing pipeline._signals loads only atexit and signal, so the unguarded start-up window is short."""
    probe = (
        "import sys; before = set(sys.modules); from pipeline import _signals; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    # Without the test suite's sitecustomize (it imports typing itself); the probe opens no socket.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert set(loaded.stdout.split()) <= {"pipeline", "pipeline._signals", "atexit", "signal"}


def test_runs_and_report_read_a_history_the_user_cannot_write(shared_dir: Path) -> None:
    """`pipeline runs` and `pipeline report` only read: a read-only history.sqlite3 lists and renders."""
    corpus = _offline_corpus(shared_dir)
    config = _config(shared_dir, corpus)
    assert _cli("refresh", "--config", str(config), cwd=shared_dir).returncode == 0  # as root
    state = shared_dir / "state"
    (state / "history.sqlite3").chmod(0o644)  # root's: read-only for `nobody`
    state.chmod(0o755)

    code, out, err = run_cli_unprivileged(["runs", "--config", str(config)], shared_dir)
    assert code == ExitCode.OK, err
    assert _runs(state)[0]["id"] in out
    code, out, err = run_cli_unprivileged(["report", "--config", str(config), "--format", "json"], shared_dir)
    assert code == ExitCode.OK, err
    assert json.loads(out)["run"]["id"] == _runs(state)[0]["id"]
