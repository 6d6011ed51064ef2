"""Pure verdict rules: dead-after-N-runs-over-D-days, blocked, recheck policy, outage guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.config import ArchiveSettings, HealthSettings, Threshold
from pipeline.health.archive import candidates
from pipeline.health.results import ResultTable
from pipeline.health.verdict import carried, detect_outage, is_due, judge
from pipeline.models import LinkResult, LinkStatus, Observation, Outcome, UrlHistory

T0 = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
HEALTH = HealthSettings()
URL = "https://example.org/a"


def obs(
    outcome: Outcome, status: int | None = None, *, host: str = "example.org:443", net: bool = False
) -> Observation:
    return Observation(
        URL, outcome, http_status=status, reason=f"{outcome.value} {status}", host=host, network_level=net
    )


def history_of(result: LinkResult) -> UrlHistory:
    """What the store would give back for a verdict."""
    return UrlHistory(
        url=result.url,
        status=result.status,
        first_failed_at=result.first_failed_at,
        last_success_at=result.last_success_at,
        last_checked_at=result.checked_at,
        consecutive_failures=result.consecutive_failures,
        failure_kind=getattr(result, "failure_kind", None),
        http_status=result.http_status,
        final_url=result.final_url,
        reason=result.reason,
    )


def runs(outcomes: list[tuple[Outcome, float]], health: HealthSettings = HEALTH) -> list[LinkResult]:
    """Judge a sequence of (outcome, day offset) runs, feeding each verdict back as history."""
    history: UrlHistory | None = None
    verdicts = []
    for outcome, day in outcomes:
        status = {Outcome.HARD: 404, Outcome.SOFT: 503, Outcome.BLOCKED: 403}.get(outcome, 200)
        result = judge(obs(outcome, status), history, health, T0 + timedelta(days=day))
        verdicts.append(result)
        history = history_of(result)
    return verdicts


def test_success_is_ok_and_moved_is_redirected() -> None:
    """A 2xx is ok; a 2xx reached through a permanent redirect is redirected."""
    assert judge(obs(Outcome.SUCCESS, 200), None, HEALTH, T0).status is LinkStatus.OK
    assert judge(obs(Outcome.MOVED, 200), None, HEALTH, T0).status is LinkStatus.REDIRECTED


def test_first_hard_failure_is_only_failing() -> None:
    """One 404 is failing, with the streak started now."""
    result = judge(obs(Outcome.HARD, 404), None, HEALTH, T0)
    assert (result.status, result.consecutive_failures, result.first_failed_at) == (LinkStatus.FAILING, 1, T0)


def test_hard_failures_dead_after_three_runs_over_three_days() -> None:
    """Hard failures on days 0, 1 and 3 make the link dead on the third run, not before."""
    statuses = [r.status for r in runs([(Outcome.HARD, 0), (Outcome.HARD, 1), (Outcome.HARD, 3)])]
    assert statuses == [LinkStatus.FAILING, LinkStatus.FAILING, LinkStatus.DEAD]


def test_many_runs_in_one_day_are_not_enough() -> None:
    """Five hard failures within hours stay failing: the days of evidence are missing."""
    verdicts = runs([(Outcome.HARD, h / 24) for h in range(5)])
    assert verdicts[-1].status is LinkStatus.FAILING
    assert verdicts[-1].consecutive_failures == 5


def test_enough_days_but_too_few_runs_stay_failing() -> None:
    """Two hard failures ten days apart are not three runs."""
    assert runs([(Outcome.HARD, 0), (Outcome.HARD, 10)])[-1].status is LinkStatus.FAILING


def test_soft_failures_need_five_runs_over_seven_days() -> None:
    """5xx on days 0,1,2,3 and 7 is dead only at the fifth run; four runs over 8 days are not."""
    five = runs([(Outcome.SOFT, d) for d in (0, 1, 2, 3, 7)])
    assert [r.status for r in five][-2:] == [LinkStatus.FAILING, LinkStatus.DEAD]
    four = runs([(Outcome.SOFT, d) for d in (0, 1, 2, 8)])
    assert four[-1].status is LinkStatus.FAILING


def test_hard_threshold_of_one_run_is_decisive_for_hard_only() -> None:
    """With hard N=1 over 0 days one 404 is dead, while a 503 stays failing."""
    health = HealthSettings(hard=Threshold(runs=1, days=0))
    assert judge(obs(Outcome.HARD, 404), None, health, T0).status is LinkStatus.DEAD
    assert judge(obs(Outcome.SOFT, 503), None, health, T0).status is LinkStatus.FAILING


def test_mixed_streak_uses_soft_threshold() -> None:
    """A soft failure in a streak of 404s makes it wait for the soft threshold."""
    verdicts = runs([(Outcome.HARD, 0), (Outcome.SOFT, 1), (Outcome.HARD, 3)])
    assert verdicts[-1].status is LinkStatus.FAILING
    assert verdicts[-1].failure_kind == "soft"


def test_dead_stays_dead_until_a_success() -> None:
    """A timeout after a run of 404s does not turn a dead link back to failing; only a success does."""
    verdicts = runs(
        [(Outcome.HARD, 0), (Outcome.HARD, 1), (Outcome.HARD, 3), (Outcome.SOFT, 4), (Outcome.SOFT, 5)]
    )
    assert [r.status for r in verdicts][2:] == [LinkStatus.DEAD] * 3
    recovered = runs([(Outcome.HARD, 0), (Outcome.HARD, 1), (Outcome.HARD, 3), (Outcome.SUCCESS, 4)])
    assert recovered[-1].status is LinkStatus.OK


def test_success_resets_the_streak() -> None:
    """A success between failures restarts the count and the first-failure date."""
    verdicts = runs(
        [(Outcome.HARD, 0), (Outcome.HARD, 1), (Outcome.SUCCESS, 2), (Outcome.HARD, 4), (Outcome.HARD, 8)]
    )
    assert verdicts[2].consecutive_failures == 0
    assert verdicts[2].last_success_at == T0 + timedelta(days=2)
    assert verdicts[-1].status is LinkStatus.FAILING
    assert verdicts[-1].consecutive_failures == 2
    assert verdicts[-1].first_failed_at == T0 + timedelta(days=4)


def test_blocked_neither_counts_nor_resets() -> None:
    """A 403 between failures keeps the streak as it was; blocked is never dead."""
    verdicts = runs(
        [(Outcome.HARD, 0), (Outcome.BLOCKED, 1), (Outcome.BLOCKED, 9), (Outcome.HARD, 2), (Outcome.HARD, 3)]
    )
    assert verdicts[1].status is LinkStatus.BLOCKED
    assert verdicts[2].status is LinkStatus.BLOCKED
    assert verdicts[2].consecutive_failures == 1
    assert verdicts[-1].status is LinkStatus.DEAD


def test_carried_keeps_stored_verdict_and_its_date() -> None:
    """A URL not requested this run keeps its stored verdict with its old check date."""
    stored = UrlHistory(
        URL, LinkStatus.OK, last_checked_at=T0, last_success_at=T0, http_status=200, reason="fine"
    )
    result = carried(stored)
    assert (result.status, result.checked_at, result.http_status, result.reason) == (
        LinkStatus.OK,
        T0,
        200,
        "fine",
    )


def test_ok_is_not_due_before_recheck_interval() -> None:
    """An ok URL checked 3 days ago is not due; 7 days later it is; --force always is."""
    stored = UrlHistory(URL, LinkStatus.OK, last_checked_at=T0)
    assert not is_due(stored, HEALTH, T0 + timedelta(days=3), force=False)
    assert is_due(stored, HEALTH, T0 + timedelta(days=7), force=False)
    assert is_due(stored, HEALTH, T0 + timedelta(days=3), force=True)


def test_failures_and_unknown_urls_are_always_due() -> None:
    """Failing, dead, blocked and never-seen URLs are requested every run."""
    soon = T0 + timedelta(minutes=1)
    for status in (LinkStatus.FAILING, LinkStatus.DEAD, LinkStatus.BLOCKED):
        assert is_due(UrlHistory(URL, status, last_checked_at=T0), HEALTH, soon, force=False)
    assert is_due(None, HEALTH, soon, force=False)


def _many(hosts: int, down: int) -> dict[str, Observation]:
    found = {}
    for i in range(hosts):
        url = f"https://h{i}.example/"
        if i < down:
            found[url] = Observation(
                url, Outcome.SOFT, reason="connection refused", network_level=True, host=f"h{i}:443"
            )
        else:
            found[url] = Observation(url, Outcome.SUCCESS, http_status=200, host=f"h{i}:443")
    return found


def test_outage_when_most_hosts_fail_below_http() -> None:
    """9 of 10 hosts failing at the network level is an outage, named with the counts."""
    reason = detect_outage(_many(10, 9), HEALTH)
    assert reason is not None and "9 of 10 hosts" in reason


def test_no_outage_when_few_hosts_fail_or_run_is_tiny() -> None:
    """5 of 10 hosts down is not an outage; neither is 1 of 2 (below min_hosts)."""
    assert detect_outage(_many(10, 5), HEALTH) is None
    assert detect_outage(_many(2, 1), HEALTH) is None


def test_no_host_answering_is_an_outage_however_few() -> None:
    """When not one host answered and there is no baseline, nothing can be trusted, even with 1-2 hosts."""
    reason = detect_outage(_many(2, 2), HEALTH)
    assert reason is not None and "none answered" in reason


def test_known_good_hosts_are_the_baseline() -> None:
    """Hosts that answered before decide: they answer now, so failures elsewhere are real evidence."""
    found = _many(10, 9)  # h0..h8 down, h9 up
    assert detect_outage(found, HEALTH, known_good={"h9:443"}) is None
    assert detect_outage(found, HEALTH, known_good={"h0:443", "h1:443", "h9:443"}) is None
    reason = detect_outage(found, HEALTH, known_good={f"h{i}:443" for i in (0, 1, 2, 3, 4, 9)})
    assert reason is not None and "5 of 6 hosts that answered before" in reason
    every_baseline_down = detect_outage(_many(3, 3), HEALTH, known_good={"h0:443", "h1:443"})
    assert every_baseline_down is not None and "2 of 2 hosts that answered before" in every_baseline_down


def test_http_errors_are_not_outage_evidence() -> None:
    """Hosts answering 404/503 are up: not an outage."""
    found = {
        f"https://h{i}/": Observation(f"https://h{i}/", Outcome.HARD, 404, host=f"h{i}:443") for i in range(5)
    }
    assert detect_outage(found, HEALTH) is None


def test_failed_canary_is_an_outage() -> None:
    """If a canary URL fails below HTTP, the run is an outage even when other hosts answer."""
    canary = "https://h0.example/"
    reason = detect_outage(_many(10, 1), HEALTH, canaries=[canary])
    assert reason is not None and "canary" in reason
    assert detect_outage(_many(10, 0), HEALTH, canaries=[canary]) is None


def test_blocked_canary_proves_nothing() -> None:
    """A canary answering 403 is up at the network level: not an outage."""
    found = _many(10, 0)
    found["https://h0.example/"] = Observation("https://h0.example/", Outcome.BLOCKED, 403, host="h0:443")
    assert detect_outage(found, HEALTH, canaries=["https://h0.example/"]) is None


def test_result_table_gives_back_equal_verdicts() -> None:
    """Verdicts packed in a ResultTable read back equal (final URL none, the URL itself or another; a
    verdict whose URL is not its key kept whole), alike ones sharing one shape, and go when deleted."""
    table = ResultTable()
    results = {
        "https://a.example/1": LinkResult(
            "https://a.example/1",
            LinkStatus.OK,
            200,
            "https://a.example/1",
            reason="",
            last_success_at=T0,
            checked_at=T0,
        ),
        "https://a.example/2": LinkResult(
            "https://a.example/2",
            LinkStatus.OK,
            200,
            "https://a.example/2",
            reason="",
            last_success_at=T0,
            checked_at=T0,
        ),
        "https://a.example/3": LinkResult(
            "https://a.example/3",
            LinkStatus.REDIRECTED,
            301,
            "https://b.example/",
            ("https://b.example/",),
            "moved",
            last_success_at=T0,
            checked_at=T0,
        ),
        "https://a.example/4": LinkResult(
            "https://a.example/4", LinkStatus.DEAD, 404, None, (), "gone", T0, None, 3, T0, "hard"
        ),
        "https://a.example/5": LinkResult("https://a.example/other", LinkStatus.SKIPPED),
    }
    for url, result in results.items():
        table[url] = result

    assert dict(table) == results
    assert table.shapes == 2  # the two alike verdicts are one shape; the redirected and the odd one have none
    table["https://a.example/3"] = LinkResult("https://a.example/3", LinkStatus.OK)  # its final URL goes
    assert table["https://a.example/3"] == LinkResult("https://a.example/3", LinkStatus.OK)
    del table["https://a.example/4"]
    assert "https://a.example/4" not in table and len(table) == 4


def test_result_table_names_its_statuses_without_decoding() -> None:
    """``statuses`` names every status a verdict holds, a packed one's and a whole one's (what the
    check-only write pass asks: is any URL dead?)."""
    table = ResultTable()
    table["https://a.example/1"] = LinkResult("https://a.example/1", LinkStatus.OK, 200, checked_at=T0)
    table["https://a.example/2"] = LinkResult("https://a.example/other", LinkStatus.FAILING)
    assert table.statuses() == {LinkStatus.OK, LinkStatus.FAILING}
    table["https://a.example/3"] = LinkResult("https://a.example/3", LinkStatus.DEAD, 404, checked_at=T0)
    assert LinkStatus.DEAD in table.statuses()


def test_archive_candidates_from_a_result_table_are_those_of_its_decoded_verdicts() -> None:
    """The archive's candidates picked from packed verdicts (without decoding) equal those picked from the
    same verdicts held whole: dead, and failing only when configured; a verdict kept whole counts too."""
    table = ResultTable()
    for n, status in enumerate([LinkStatus.OK, LinkStatus.DEAD, LinkStatus.FAILING, LinkStatus.DEAD]):
        url = f"https://a.example/{n}"
        table[url] = LinkResult(url, status, 404 if status is LinkStatus.DEAD else 200, checked_at=T0)
    table["https://a.example/9"] = LinkResult("https://a.example/moved", LinkStatus.DEAD, 410)
    table["https://a.example/1"] = LinkResult("https://a.example/1", LinkStatus.OK, 200, checked_at=T0)
    for failing in (False, True):
        settings = ArchiveSettings(failing=failing)
        assert candidates(table, settings) == candidates(dict(table.items()), settings)
    assert candidates(table, ArchiveSettings()) == ["https://a.example/3", "https://a.example/9"]
    assert list(table.with_status({LinkStatus.FAILING})) == ["https://a.example/2"]


def test_result_table_keeps_a_redirected_verdict_whole_without_a_shape_of_its_own() -> None:
    """A verdict with redirects (its reason names its target) adds no shape, and reads back equal."""
    table = ResultTable()
    for n in range(3):
        url, target = f"https://a.example/{n}", f"https://b.example/{n}"
        table[url] = LinkResult(
            url,
            LinkStatus.OK,
            200,
            target,
            (target,),
            f"after a permanent redirect to {target}",
            checked_at=T0,
        )
    assert table.shapes == 0
    assert table["https://a.example/2"].final_url == "https://b.example/2"
    assert table["https://a.example/1"].redirects == ("https://b.example/1",)
