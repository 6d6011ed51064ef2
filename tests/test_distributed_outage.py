"""The outage guard per worker (executor: celery): one worker cut off never turns links dead.

The judgement is tested on real observations (a real check against the loopback site and closed loopback
ports) tagged with the worker that would have made them, and end to end with a real worker in a network
namespace of its own (``unshare -n``: no route to the web, its broker and database on Unix sockets).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from celeryworkers import answering, worker_config, workers
from localsite import LocalSite, closed_port, make_settings
from pgserver import postgres_instance
from redisserver import redis_server

from pipeline import check
from pipeline.configfile import parse_settings
from pipeline.distributed import codec
from pipeline.health.verdict import detect_outage, verdicts, worker_outages
from pipeline.models import LinkStatus, Observation, Outcome, RunOptions, host_key
from pipeline.runner import refresh

NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _observed(local_site: LocalSite, tmp_path: Path) -> tuple[dict[str, Observation], list[str], list[str]]:
    """Real observations: 4 answering hosts (worker a) and 3 refused ones (worker b)."""
    local_site.route("/ok", body=b"ok")
    answering = [local_site.url("/ok", host) for host in range(4)]
    refused = [f"http://127.0.0.{70 + i}:{closed_port(f'127.0.0.{70 + i}')}/x" for i in range(3)]
    settings = make_settings(tmp_path, retry={"attempts": 1}, http={"soft404_probe": False})
    return check.check_links_sync([*answering, *refused], settings, keep_pages=False), answering, refused


def test_a_worker_cut_off_is_judged_apart_and_its_failures_count_for_nothing(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """All hosts that answered before fail below HTTP on one worker while another worker's answer: the
    run-wide guard sees no outage, the per-worker one does, and no link of that worker turns dead."""
    observations, answering, refused = _observed(local_site, tmp_path)
    origin = {**dict.fromkeys(answering, "a@h"), **dict.fromkeys(refused, "b@h")}
    known_good = {str(host_key(url)) for url in [*answering, *refused]}  # every host answered last night
    settings = make_settings(tmp_path, health={"soft": {"runs": 1, "days": 0}})

    run_wide = detect_outage(observations, settings.health, known_good)
    outages = worker_outages(observations, origin, settings.health, known_good)
    suspect = {url: outages["b@h"] for url in refused}
    results, judged = verdicts(list(observations), observations, {}, run_wide, settings, NOW, suspect)
    unguarded, _ = verdicts(list(observations), observations, {}, run_wide, settings, NOW)

    assert run_wide is None  # 3 of 7 baseline hosts down: below the ratio
    assert list(outages) == ["b@h"] and "3 of 3 hosts that answered before" in outages["b@h"]
    assert {unguarded[url].status for url in refused} == {LinkStatus.DEAD}  # what the guard prevents
    assert {results[url].status for url in refused} == {LinkStatus.SKIPPED}
    assert all("not judged: 3 of 3 hosts" in results[url].reason for url in refused)
    assert {result.url for result in judged} == set(answering)  # only worker a's answers are recorded


def test_a_worker_that_saw_too_few_hosts_is_not_judged_alone(local_site: LocalSite, tmp_path: Path) -> None:
    """A worker that requested fewer than health.outage.min_hosts hosts (no canary) is not called cut off:
    a host or two down cannot tell its network from those sites."""
    observations, answering, refused = _observed(local_site, tmp_path)
    origin = {**dict.fromkeys(answering, "a@h"), **dict.fromkeys(refused, "b@h")}
    settings = make_settings(tmp_path, health={"outage": {"min_hosts": 4}})

    assert worker_outages(observations, origin, settings.health) == {}
    canary = refused[0]
    reason = worker_outages(observations, origin, settings.health, canaries=[canary])["b@h"]
    assert reason.startswith(f"canary {canary} failed")


def test_an_observation_row_carries_its_worker() -> None:
    """The worker's name survives the row's JSON; a row written before the field existed reads as ''."""
    obs = Observation(url="http://h/a", outcome=Outcome.SUCCESS, host="h:80")
    row = codec.encode(codec.Observed(obs, worker="w1@box"))

    assert codec.decode(row).worker == "w1@box"
    assert codec.decode(_V1_ROW).worker == ""


# A row of format 1 (keyed objects) written before the worker field existed.
_V1_ROW = (
    '{"observation":{"url":"http://h/a","outcome":"success","http_status":null,"final_url":null,'
    '"redirects":[],"reason":"","network_level":false,"host":"h:80","elapsed":0.0,"page":null},'
    '"page":null,"validators":null,"probe":null,"refused":null}'
)


def test_a_worker_without_a_network_turns_no_link_dead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real worker in a network namespace of its own (no route to any web host; broker and database on
    Unix sockets) beside a healthy one: the run is no outage, yet none of the links it failed is dead."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare -n)")
    site = LocalSite(hosts=12, first_address=80).start()
    try:
        site.route("/ok", body=b"ok")
        urls = [site.url("/ok", host) for host in range(12)]
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        lines = "".join(f'  - webUrl: "{url}"\n' for url in urls)
        (corpus / "a.md").write_text(f"---\ntitle: a\nrelated:\n{lines}---\n", encoding="utf-8")
        with postgres_instance() as pg, redis_server() as redis:
            with psycopg.connect(f"{pg.url}/postgres", autocommit=True) as admin:
                admin.execute("CREATE DATABASE cut")
            state_url = f"{pg.url}/cut"
            local_state = f"postgresql://pipeline@/cut?host={pg.folder}&port={pg.port}"
            (tmp_path / "good").mkdir()
            (tmp_path / "cut").mkdir()
            good = worker_config(tmp_path / "good", redis.url, state_url)
            cut = worker_config(tmp_path / "cut", redis.socket_url, local_state)
            settings = make_settings(
                tmp_path,
                corpus={"roots": [str(corpus)]},
                retry={"attempts": 1},
                health={"soft": {"runs": 1, "days": 0}, "outage": {"min_hosts": 1}},
            ).model_dump(mode="json")
            settings["executor"] = "celery"
            settings["celery"] = {"broker_url": redis.url, "wait_timeout": 20}
            settings["state"]["url"] = state_url
            with (
                workers(cut, 1, tmp_path / "cut", "-n", "cut@%h", prefix=("unshare", "-n")),
                workers(good, 1, tmp_path / "good", "--concurrency", "3"),
            ):
                deadline = time.monotonic() + 30
                while answering(redis.url) < 2 and time.monotonic() < deadline:
                    time.sleep(0.2)
                outcome = refresh(
                    parse_settings(settings), RunOptions(now=lambda: NOW, show_progress=False), io.StringIO()
                )
                cut_log = (tmp_path / "cut" / "worker0.log").read_text(errors="replace")
    finally:
        site.stop()

    report = outcome.report.to_json()
    statuses = {row["url"]: row["status"] for row in report["links"]}
    assert re.search(r"shard \d+ of \w+: [1-9]\d* URLs checked", cut_log)  # the cut-off worker did check
    assert not report["run"]["outage"]  # the healthy worker's answers keep the run-wide guard quiet
    assert "dead" not in statuses.values(), statuses
    assert "skipped" in statuses.values() and "ok" in statuses.values()
    assert any("outage on worker cut@" in record.getMessage() for record in caplog.records)
