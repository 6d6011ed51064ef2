"""Archive copies of dead links: the availability API on a local server, cache, politeness, write-back."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import netguard
import pytest
from localsite import LocalSite, make_settings
from wayback import Wayback

from pipeline.config import Settings
from pipeline.configfile import parse_settings
from pipeline.errors import ConfigError
from pipeline.health.archive import parse_answer, wayback_timestamp
from pipeline.models import ExitCode, RunOptions
from pipeline.report.schema import validate_report
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
COPY = "https://web.archive.org/web/20230801000000/{}"


def _settings(tmp_path: Path, corpus: Path, wayback: Wayback, **archive: object) -> Settings:
    return make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={
            "hard": {"runs": 1, "days": 0},
            "archive": {"enabled": True, "endpoint": wayback.endpoint, "min_interval": 0, **archive},
        },
        metadata={"enabled": False},
        retry={"attempts": 1},
    )


def _corpus(tmp_path: Path, site: LocalSite, dead: int = 1) -> Path:
    site.route("/fine", status=200)
    for index in range(dead):
        site.route(f"/gone{index}", status=404)
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    related = "".join(f'  - webUrl: "{site.url(f"/gone{i}")}"\n' for i in range(dead))
    (corpus / "a.md").write_text(
        "---\n"
        "title: A\n"
        "publishedDateTime: 2023-08-09T16:38:00Z\n"
        f'webUrl: "{site.url("/fine")}"\n'
        f"related:\n{related}"
        "---\nbody\n",
        encoding="utf-8",
    )
    return corpus


def _run(settings: Settings, when: datetime = DAY0) -> dict[str, object]:
    outcome = refresh(settings, RunOptions(now=lambda: when, show_progress=False), io.StringIO())
    assert outcome.exit_code is ExitCode.OK
    validate_report(outcome.report.to_json())
    return outcome.report.to_json()


def _links(report: dict[str, object]) -> dict[str, dict[str, object]]:
    return {link["url"]: link for link in report["links"]}  # type: ignore[attr-defined, index]


def test_parse_answer_reads_the_availability_json() -> None:
    """A copy gives (https URL, timestamp); an empty answer is none found; another shape is an error."""
    found = {
        "archived_snapshots": {
            "closest": {
                "available": True,
                "status": "200",
                "timestamp": "20230101",
                "url": "http://web.archive.org/web/20230101/https://a.example/",
            }
        }
    }
    assert parse_answer(found) == ("https://web.archive.org/web/20230101/https://a.example/", "20230101")
    assert parse_answer({"url": "x", "archived_snapshots": {}}) == (None, None)
    with pytest.raises(ValueError, match="archived_snapshots"):
        parse_answer({"error": "down"})


def test_wayback_timestamp_from_published_date_time() -> None:
    """publishedDateTime (ISO text, with Z or an offset) becomes UTC YYYYMMDDhhmmss; junk gives None."""
    assert wayback_timestamp("2023-08-09T16:38:00Z") == "20230809163800"
    assert wayback_timestamp("2023-08-09T18:38:00+02:00") == "20230809163800"
    assert wayback_timestamp("yesterday") is None
    assert wayback_timestamp(None) is None


def test_a_date_without_a_time_admits_copies_of_that_whole_day() -> None:
    """`publishedDateTime: 2023-08-09` (no time) asks for the closest copy up to the end of that day."""
    assert wayback_timestamp("2023-08-09") == "20230809235959"
    assert wayback_timestamp(date(2023, 8, 9)) == "20230809235959"


def test_dead_link_gets_its_copy_in_every_report(local_site: LocalSite, tmp_path: Path) -> None:
    """A dead link's copy before the article's date is in JSON, MD and HTML; healthy links are not asked."""
    corpus = _corpus(tmp_path, local_site)
    gone = local_site.url("/gone0")
    with Wayback() as wayback:
        wayback.copies[gone] = (COPY.format(gone), "20230801000000")
        report = _run(_settings(tmp_path, corpus, wayback))
    assert wayback.requests == [
        {"url": gone, "timestamp": "20230809163800", "closest": "before", "statuscodes": "200"}
    ]
    links = _links(report)
    assert links[gone]["archive"] == {"url": COPY.format(gone), "timestamp": "20230801000000"}
    assert links[local_site.url("/fine")]["archive"] is None
    latest = tmp_path / "reports" / "latest"
    assert COPY.format(gone) in (latest / "report.md").read_text(encoding="utf-8")
    assert COPY.format(gone).replace("&", "&amp;") in (latest / "report.html").read_text(encoding="utf-8")


def test_copies_are_cached_and_none_found_is_retried_after_days(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """A found copy is never asked again; "none found" is asked again only after retry_none_after_days."""
    corpus = _corpus(tmp_path, local_site, dead=2)
    found, missing = local_site.url("/gone0"), local_site.url("/gone1")
    with Wayback() as wayback:
        wayback.copies[found] = (COPY.format(found), "20230801000000")
        settings = _settings(tmp_path, corpus, wayback, retry_none_after_days=30)
        _run(settings)
        assert sorted(r["url"] for r in wayback.requests) == sorted([found, missing])
        report = _run(settings, DAY0 + timedelta(days=1))
        assert len(wayback.requests) == 2
        assert _links(report)[found]["archive"]["url"] == COPY.format(found)  # type: ignore[index]
        _run(settings, DAY0 + timedelta(days=31))
        assert [r["url"] for r in wayback.requests[2:]] == [missing]


def test_archive_down_changes_no_verdict_and_is_not_cached(local_site: LocalSite, tmp_path: Path) -> None:
    """A 500 from the archive leaves the link dead with no copy, and the next run asks again."""
    corpus = _corpus(tmp_path, local_site)
    gone = local_site.url("/gone0")
    with Wayback() as wayback:
        wayback.script = [500]
        wayback.copies[gone] = (COPY.format(gone), "20230801000000")
        settings = _settings(tmp_path, corpus, wayback)
        report = _run(settings)
        assert _links(report)[gone]["status"] == "dead"
        assert _links(report)[gone]["archive"] is None
        report = _run(settings, DAY0 + timedelta(days=1))
        assert _links(report)[gone]["archive"] is not None
        assert len(wayback.requests) == 2


def test_a_429_is_waited_out_and_a_second_one_stops_asking(local_site: LocalSite, tmp_path: Path) -> None:
    """One 429 is honoured (Retry-After waited) and retried; two in a row end this run's lookups."""
    corpus = _corpus(tmp_path, local_site, dead=3)
    with Wayback() as wayback:
        wayback.script = [429]
        _run(_settings(tmp_path, corpus, wayback))
        assert len(wayback.requests) == 4
        assert wayback.times[1] - wayback.times[0] >= 0.95
    with Wayback(address="127.0.0.31") as wayback:
        wayback.script = [429, 429]
        _run(_settings(tmp_path, corpus, wayback, retry_none_after_days=0))
        assert len(wayback.requests) == 2  # the other two links wait for the next run


def test_requests_to_the_archive_are_spaced(local_site: LocalSite, tmp_path: Path) -> None:
    """health.archive.min_interval spaces request starts (the archive asks for ~1 per second); unspaced
    starts are milliseconds apart, and the margin absorbs the test server's delays on a busy machine."""
    corpus = _corpus(tmp_path, local_site, dead=3)
    with Wayback() as wayback:
        _run(_settings(tmp_path, corpus, wayback, min_interval=0.3))
    gaps = [b - a for a, b in zip(wayback.times, wayback.times[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.22


def test_write_puts_archive_url_into_the_link_health_entry(local_site: LocalSite, tmp_path: Path) -> None:
    """With health.archive.write the dead link's linkHealth entry carries archiveUrl; without it, not."""
    corpus = _corpus(tmp_path, local_site)
    gone = local_site.url("/gone0")
    with Wayback() as wayback:
        wayback.copies[gone] = (COPY.format(gone), "20230801000000")
        _run(_settings(tmp_path, corpus, wayback))
        text = (corpus / "a.md").read_text(encoding="utf-8")
        assert "linkHealth:" in text and "archiveUrl" not in text
        _run(_settings(tmp_path, corpus, wayback, write=True), DAY0 + timedelta(days=1))
    text = (corpus / "a.md").read_text(encoding="utf-8")
    assert (
        f"archiveUrl: {json.dumps(COPY.format(gone))}" in text or f"archiveUrl: {COPY.format(gone)}" in text
    )


def test_archive_endpoint_must_be_http() -> None:
    """A non-http(s) archive endpoint is a config error naming health.archive.endpoint."""
    with pytest.raises(ConfigError, match=r"health\.archive\.endpoint: 'ftp://x' is not an http\(s\) URL"):
        parse_settings({"health": {"archive": {"endpoint": "ftp://x"}}})


def test_archive_write_without_flags_is_a_config_error() -> None:
    """health.archive.write with health.flag false could write nothing: it is refused, naming the key."""
    with pytest.raises(ConfigError, match=r"health\.archive\.write: needs health\.flag: true"):
        parse_settings({"health": {"flag": False, "archive": {"write": True}}})


def test_a_cli_run_with_its_own_config_cannot_reach_a_public_archive(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """A CLI subprocess whose config points the archive at a public address is stopped by the test guard."""
    corpus = _corpus(tmp_path, local_site)
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        json.dumps(
            {
                "corpus": {"roots": [str(corpus)]},
                "http": {"allow_networks": ["127.0.0.0/8"], "connect_timeout": 2, "total_timeout": 5},
                "retry": {"attempts": 1},
                # 192.0.2.1 (TEST-NET-1) stands for archive.org: public, but never routed anywhere.
                "health": {
                    "hard": {"runs": 1, "days": 0},
                    "archive": {"endpoint": "http://192.0.2.1/wayback/available", "timeout": 2},
                },
                "metadata": {"enabled": False},
                "state": {"dir": str(tmp_path / "state")},
                "reports": {"dir": str(tmp_path / "reports")},
            }
        ),
        encoding="utf-8",
    )
    attempts = tmp_path / "netguard.log"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "refresh", "-q", "--config", str(config), "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, netguard.LOG_ENV: str(attempts)},
    )

    assert result.returncode == 0, result.stderr
    assert _links(json.loads(result.stdout))[local_site.url("/gone0")]["status"] == "dead"
    assert attempts.read_text(encoding="utf-8").splitlines() == ["connect ('192.0.2.1', 80)"]
    assert "test network guard" in result.stderr


def test_the_default_archive_endpoint_is_never_resolved_in_tests(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archive lookups are on by default; in the test process archive.org is refused before any DNS query."""
    attempts = tmp_path / "netguard.log"
    monkeypatch.setenv(netguard.LOG_ENV, str(attempts))
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(_corpus(tmp_path, local_site))]},
        health={"hard": {"runs": 1, "days": 0}, "archive": {"enabled": True}},
        metadata={"enabled": False},
        retry={"attempts": 1},
    )

    links = _links(_run(settings))

    assert links[local_site.url("/gone0")]["status"] == "dead"
    assert attempts.read_text(encoding="utf-8").splitlines() == ["resolve archive.org"]


def test_a_stop_request_cuts_a_429_pause_short(local_site: LocalSite, tmp_path: Path) -> None:
    """SIGTERM (the stop event) during the archive's Retry-After pause ends the run at once, not after it."""
    corpus = _corpus(tmp_path, local_site, dead=2)
    stop = threading.Event()
    with Wayback() as wayback:
        wayback.script = [429]
        wayback.retry_after = "30"
        settings = _settings(tmp_path, corpus, wayback)
        settings = settings.model_copy(
            update={"retry": settings.retry.model_copy(update={"retry_after_max": 60.0})}
        )
        stopped_at: list[float] = []

        def stop_once_paused() -> None:
            # Stop only once the 429 has been answered, so a loaded machine cannot stop the run before
            # the pause starts (a fixed timer did, now and then).
            deadline = time.monotonic() + 60
            while not wayback.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            stopped_at.append(time.monotonic())
            stop.set()

        threading.Thread(target=stop_once_paused, daemon=True).start()
        outcome = refresh(
            settings, RunOptions(now=lambda: DAY0, show_progress=False, stop=stop), io.StringIO()
        )
    assert stopped_at, "the run ended before the archive's 429 was answered"
    assert time.monotonic() - stopped_at[0] < 10
    assert outcome.exit_code is ExitCode.INTERRUPTED
    assert len(wayback.requests) == 1
