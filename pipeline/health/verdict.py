"""Pure decisions about link health: this run's observation + stored history -> verdict.

Reads settings ``health.*`` (``hard``/``soft`` thresholds, ``recheck_ok_after_days``, ``outage``).
Returns ``LinkResult`` values (``judge``, ``carried``), a due/not-due decision (``is_due``) and an outage
reason (``detect_outage``). No I/O; ``now`` is always passed in, so tests use a fake clock.

The dead rule (InternetArchiveBot spirit): a URL is ``dead`` when it failed on at least N separate runs
spanning at least D days with no success between. A *streak* starts at the first failure after a success
(or ever) and counts failing runs. Hard failures (404, 410, a redirect to a 404, a name that does not
resolve) use ``health.hard``; soft ones (5xx, timeouts, resets, refused, TLS, redirect loops) use
``health.soft``. A streak that mixes both uses the soft threshold: only a streak of hard failures alone is
judged by the hard one (so one soft failure makes the evidence need more runs, never fewer).
``blocked`` (401/403/429/999/challenge) counts neither as failure nor as success: the streak is kept as is.
Any success (``ok`` or ``redirected``) ends the streak.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta

from pipeline.config import HealthSettings, Settings
from pipeline.health import verdict
from pipeline.health.results import ResultTable
from pipeline.models import (
    ALIVE,
    ANSWERED,
    HostKey,
    LinkResult,
    LinkStatus,
    Observation,
    Outcome,
    UrlHistory,
    host_key,
)

HARD = "hard"
SOFT = "soft"


def _streak_kind(previous: str | None, current: str) -> str:
    return HARD if current == HARD and previous in (None, HARD) else SOFT


def _fmt_days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def judge(obs: Observation, history: UrlHistory | None, health: HealthSettings, now: datetime) -> LinkResult:
    """The verdict for a URL requested in this run, given what is stored about it."""
    base = {
        "url": obs.url,
        "http_status": obs.http_status,
        # Most links land where they were asked: one string then, not two (kept for every URL of a run).
        "final_url": obs.url if obs.final_url == obs.url else obs.final_url,
        "redirects": obs.redirects,
        "checked_at": now,
    }
    streak = history is not None and history.consecutive_failures > 0 and history.first_failed_at is not None
    if obs.outcome in ANSWERED:
        status = LinkStatus.OK if obs.outcome is Outcome.SUCCESS else LinkStatus.REDIRECTED
        return LinkResult(status=status, reason=obs.reason, last_success_at=now, **base)  # type: ignore[arg-type]
    if obs.outcome in (Outcome.BLOCKED, Outcome.SKIPPED):
        status = LinkStatus.BLOCKED if obs.outcome is Outcome.BLOCKED else LinkStatus.SKIPPED
        return LinkResult(
            status=status,
            reason=obs.reason,
            first_failed_at=history.first_failed_at if history and streak else None,
            last_success_at=history.last_success_at if history else None,
            consecutive_failures=history.consecutive_failures if history and streak else 0,
            failure_kind=history.failure_kind if history and streak else None,
            **base,  # type: ignore[arg-type]
        )
    kind = HARD if obs.outcome is Outcome.HARD else SOFT
    if history is not None and streak:
        assert history.first_failed_at is not None
        count = history.consecutive_failures + 1
        first = history.first_failed_at
        kind = _streak_kind(history.failure_kind, kind)
    else:
        count, first = 1, now
    threshold = health.hard if kind == HARD else health.soft
    span_days = (now - first) / timedelta(days=1)
    # Once dead, a URL stays dead until it answers: a timeout after a run of 404s is no sign of life.
    was_dead = history is not None and streak and history.status is LinkStatus.DEAD
    dead = was_dead or (count >= threshold.runs and span_days >= threshold.days)
    evidence = (
        f"failed on {count} run(s) since {first:%Y-%m-%d}; {kind} failures are dead after "
        f"{threshold.runs} run(s) over {_fmt_days(threshold.days)}"
    )
    return LinkResult(
        status=LinkStatus.DEAD if dead else LinkStatus.FAILING,
        reason=f"{obs.reason} ({evidence})",
        first_failed_at=first,
        last_success_at=history.last_success_at if history else None,
        consecutive_failures=count,
        failure_kind=kind,
        **base,  # type: ignore[arg-type]
    )


def carried(history: UrlHistory) -> LinkResult:
    """The verdict for a URL not requested in this run (not due): its stored one, with its old date."""
    return LinkResult(
        url=history.url,
        status=history.status,
        http_status=history.http_status,
        final_url=history.final_url,
        redirects=history.redirects,
        reason=history.reason,
        first_failed_at=history.first_failed_at,
        last_success_at=history.last_success_at,
        consecutive_failures=history.consecutive_failures,
        checked_at=history.last_checked_at,
        failure_kind=history.failure_kind,
    )


def is_due(history: UrlHistory | None, health: HealthSettings, now: datetime, force: bool) -> bool:
    """Whether to request the URL this run: only a recent success may be skipped (failures never are)."""
    if force or history is None or history.last_checked_at is None:
        return True
    if history.status not in ALIVE:
        return True
    return now - history.last_checked_at >= timedelta(days=health.recheck_ok_after_days)


def detect_outage(
    observations: Mapping[str, Observation],
    health: HealthSettings,
    known_good: AbstractSet[str] = frozenset(),
    canaries: Iterable[str] = (),
) -> str | None:
    """None, or why this run's failures cannot be trusted as evidence about the links.

    - a canary URL failed below HTTP (a blocked or guarded canary proves nothing either way);
    - of the hosts checked that answered in an earlier run (``known_good``, the runner re-checks a few of
      them every run as a baseline), most failed below HTTP;
    - with no such baseline yet (the first runs): most of at least ``min_hosts`` hosts failed below HTTP,
      or not one host answered at all.
    """
    outage = health.outage
    for canary in canaries:
        obs = observations.get(canary)
        if obs is not None and obs.network_level:
            return f"canary {canary} failed: {obs.reason or obs.outcome.value}"
    hosts: dict[str, bool] = {}
    for obs in observations.values():
        if obs.outcome is Outcome.SKIPPED or not obs.host:
            continue
        # A host counts as down when every URL on it failed below HTTP.
        hosts[obs.host] = hosts.get(obs.host, True) and obs.network_level
    baseline = [host for host in hosts if host in known_good]
    if baseline:
        down = sum(hosts[host] for host in baseline)
        if down / len(baseline) >= outage.network_failure_ratio:
            return f"{down} of {len(baseline)} hosts that answered before failed below HTTP (DNS, connect)"
        return None
    down = sum(hosts.values())
    if hosts and down == len(hosts):
        return f"all {down} hosts failed below HTTP (DNS, connect, timeout, TLS); none answered"
    if len(hosts) >= outage.min_hosts and down / len(hosts) >= outage.network_failure_ratio:
        return f"{down} of {len(hosts)} hosts failed below HTTP (DNS, connect, timeout, TLS)"
    return None


def worker_outages(
    observations: Mapping[str, Observation],
    origin: Mapping[str, str],
    health: HealthSettings,
    known_good: AbstractSet[str] = frozenset(),
    canaries: Iterable[str] = (),
) -> dict[str, str]:
    """Workers whose own network looks down (``executor: celery``): worker -> why.

    Each worker's observations (``origin``: URL -> the worker that requested it) are judged by
    :func:`detect_outage`'s rule, so a worker whose DNS or egress broke is caught even when the others'
    answers keep the run-wide guard quiet. A worker that saw fewer than ``min_hosts`` hosts and no canary
    is not judged: a host or two down cannot tell its network from those sites (it would otherwise hold
    back every small run's real failures).
    """
    by_worker: dict[str, dict[str, Observation]] = {}
    for url, obs in observations.items():
        by_worker.setdefault(origin.get(url, ""), {})[url] = obs
    wanted = set(canaries)
    found: dict[str, str] = {}
    for worker, seen in sorted(by_worker.items()):
        hosts = {obs.host for obs in seen.values() if obs.host and obs.outcome is not Outcome.SKIPPED}
        if len(hosts) < health.outage.min_hosts and not wanted & seen.keys():
            continue
        reason = detect_outage(seen, health, known_good, wanted & seen.keys())
        if reason:
            found[worker] = reason
    return found


def verdicts(
    urls: list[str],
    observations: Mapping[str, Observation],
    history: Mapping[str, UrlHistory],
    outage: str | None,
    settings: Settings,
    now: datetime,
    suspect: Mapping[str, str] | None = None,
) -> tuple[ResultTable, list[LinkResult]]:
    """Every URL's verdict (packed: a large corpus keeps them all to the end of the run), and the ones
    judged on this run's evidence (the ones to record).

    ``suspect``: URL -> why its failure is no evidence either (a worker's own network looked down)."""
    results = ResultTable()
    judged: list[LinkResult] = []
    for url in urls:
        past = history.get(url)
        obs = observations.get(url)
        if obs is None:
            if past is not None:
                results[url] = verdict.carried(past)
            continue
        why = outage or (suspect or {}).get(url)
        if why and obs.outcome not in (Outcome.SUCCESS, Outcome.MOVED, Outcome.SKIPPED):
            # Our own network may be down: this failure is no evidence. Keep what history said.
            results[url] = (
                verdict.carried(past)
                if past
                else LinkResult(url, LinkStatus.SKIPPED, reason=f"not judged: {why}")
            )
            continue
        judged.append(verdict.judge(obs, past, settings.health, now))
        results[url] = judged[-1]
    return results, judged


def uncounted(
    results: MutableMapping[str, LinkResult],
    judged: list[LinkResult],
    history: Mapping[str, UrlHistory],
    observations: Mapping[str, Observation],
) -> tuple[MutableMapping[str, LinkResult], list[LinkResult]]:
    """A partial run is not a night: a failure it sees is shown but neither recorded nor counted.

    Successes and blocked answers are still recorded (a sign of life is evidence on any run); a failing
    URL keeps its stored streak, so rerunning a few articles can never make a link dead sooner.
    """
    failed = (LinkStatus.FAILING, LinkStatus.DEAD)
    kept: list[LinkResult] = []
    for result in judged:
        if result.status not in failed:
            kept.append(result)
            continue
        past = history.get(result.url)
        streak = past is not None and past.consecutive_failures > 0
        results[result.url] = dataclasses.replace(
            result,
            status=LinkStatus.DEAD
            if streak and past is not None and past.status is LinkStatus.DEAD
            else LinkStatus.FAILING,
            first_failed_at=past.first_failed_at if streak and past else None,
            consecutive_failures=past.consecutive_failures if streak and past else 0,
            failure_kind=past.failure_kind if streak and past else None,
            reason=f"{observations[result.url].reason} (seen in a partial run: not counted toward dead)",
        )
    return results, kept


def baseline(history: Mapping[str, UrlHistory], due: list[str], count: int) -> tuple[set[HostKey], list[str]]:
    """Hosts that answered in an earlier run, and a few not-due URLs on them to re-check as a baseline.

    Without a baseline, a night where only already-failing links are due cannot tell "those sites are
    down" from "our network is down"; a handful of recently healthy hosts answers that question.
    """
    known_good = {host_key(url) for url, past in history.items() if past.status in ALIVE}
    due_set = set(due)
    # A due URL stands for its host only if it answered last time: one already failing proves nothing.
    covered = {host_key(url) for url in due if url in history and history[url].status in ALIVE}
    candidates = sorted(
        (past for url, past in history.items() if past.status in ALIVE and url not in due_set),
        key=lambda past: past.last_checked_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    baseline: list[str] = []
    for past in candidates:
        if len(covered) >= count:
            break
        host = host_key(past.url)
        if host not in covered:
            covered.add(host)
            baseline.append(past.url)
    return known_good, baseline
