"""The outage guard per worker (executor: celery): one worker cut off never turns links dead.

The judgement is tested on real observations (a real check against the loopback site and closed loopback
ports), each tagged with the worker that would have made it: no real fault here can break one worker
process's network and leave its neighbours' (they share the machine's loopback), so the seam the
coordinator fills (``origin``: URL -> worker, from the worker's rows) is driven directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from localsite import LocalSite, closed_port, make_settings

from pipeline import check
from pipeline.distributed import codec
from pipeline.health.verdict import detect_outage, verdicts, worker_outages
from pipeline.models import LinkStatus, Observation, Outcome, host_key

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
    assert codec.decode(row.replace(',"worker":"w1@box"', "")).worker == ""
