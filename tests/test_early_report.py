"""Report rows of answered URLs made while the check runs (pipeline/report/early.py), and runs using them."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from localsite import LocalSite, make_settings, one_article_per_url
from test_report_build import _report

from pipeline import runner
from pipeline.health.staging import STAGED_AT
from pipeline.health.verdict import judge, verdicts
from pipeline.models import LinkRef, LinkResult, LinkStatus, Observation, Outcome, RunOptions, UrlHistory
from pipeline.report import early as early_module
from pipeline.report.early import STAGED_TEXT, EarlyLinks, untimed
from pipeline.report.files import stored_copy
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
A, B, C, D, E = (f"http://example.test/{name}" for name in "abcde")


def test_untimed_holds_every_field_of_a_verdict_but_its_url_and_its_two_times() -> None:
    """A field added to ``LinkResult`` must be compared too, or a changed verdict could keep its early row."""
    base = LinkResult(A, LinkStatus.OK, 200, A, (), "HTTP 200", None, DAY0, 0, DAY0, None)
    others = {"url", "last_success_at", "checked_at"}
    for field in dataclasses.fields(LinkResult):
        if field.name in others:
            continue
        changed = dataclasses.replace(base, **{field.name: _another(getattr(base, field.name))})
        assert untimed(changed) != untimed(base), field.name


def _another(value: Any) -> Any:
    if isinstance(value, LinkStatus):
        return LinkStatus.DEAD
    if isinstance(value, tuple):
        return (*value, "x")
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, int):
        return value + 1
    return DAY0 - timedelta(days=3) if value is None else None


def test_rows_made_early_give_the_report_and_the_stored_copy_made_at_the_end(tmp_path: Path) -> None:
    """Answered URLs' early rows stand in the report where the final verdict is the staged one, with the
    run's time; every other URL's row is made at the end; the report and its stored copy are the same."""
    a, b = Path("a.md"), Path("b.md")
    refs = {
        a: [LinkRef(a, "ampWebUrl", A, A, line=3), LinkRef(a, "webUrl", B, B, line=4)],
        b: [LinkRef(b, "ampWebUrl", B, B, line=2), LinkRef(b, "webUrl", C, C), LinkRef(b, "x", D, D)],
    }
    before = DAY0 - timedelta(days=1)
    history = {
        B: UrlHistory(
            B, LinkStatus.FAILING, before, None, before, 1, "soft", 500, B, "HTTP 500", (), ("failing",)
        )
    }
    previous = {url: past.status for url, past in history.items()}
    settings = make_settings(Path("/nonexistent"))
    staged = {
        A: Observation(A, Outcome.SUCCESS, 200, A, reason="HTTP 200 OK"),
        B: Observation(B, Outcome.MOVED, 200, E, (E,), reason="moved"),
        C: Observation(C, Outcome.SUCCESS, 200, C, reason="HTTP 200 OK"),  # replaced by a 404 at the end
        D: Observation(D, Outcome.SUCCESS, 200, D, reason=f"HTTP 200 {STAGED_TEXT}"),  # the moment's text
    }
    final = {**staged, C: Observation(C, Outcome.HARD, 404, C, reason="HTTP 404")}
    table, _ = verdicts([A, B, C, D], final, history, None, settings, DAY0)
    results = dict(table.items())

    early = EarlyLinks(refs, previous)
    for obs in staged.values():
        early(judge(obs, history.get(obs.url), settings.health, STAGED_AT))
    with_early = _report(refs, results, tmp_path, previous=previous, early=early)
    taken = dict(early.lines)
    plain = _report(refs, results, tmp_path, previous=previous)

    assert set(taken) == {A, B}  # C's verdict changed; D's reason holds the moment's text
    assert list(with_early.links) == list(plain.links)
    assert all(DAY0.isoformat() in line and STAGED_TEXT not in line for line in taken.values())
    assert stored_copy(with_early, lines=early.lines) == stored_copy(plain)
    assert not early.lines  # each line is taken as its row is written


def test_rows_are_made_early_only_while_their_places_stay_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL cited by more articles than the bound allows gets its row at the end, like a spooled row."""
    monkeypatch.setattr(early_module, "EARLY_ROWS", 3)
    paths = [Path(f"{n}.md") for n in range(4)]
    refs = {path: [LinkRef(path, "webUrl", A, A)] for path in paths}  # A: four places
    refs[paths[0]].append(LinkRef(paths[0], "ampWebUrl", B, B))
    refs[paths[1]].append(LinkRef(paths[1], "ampWebUrl", C, C))
    settings = make_settings(Path("/nonexistent"))
    early = EarlyLinks(refs, {})
    for url in (A, B, C):
        early(judge(Observation(url, Outcome.SUCCESS, 200, url), None, settings.health, STAGED_AT))
    final = {
        url: judge(Observation(url, Outcome.SUCCESS, 200, url), None, settings.health, DAY0)
        for url in (A, B, C)
    }
    assert early.take(A, final[A]) is None  # 4 places: past the bound on its own
    assert early.take(B, final[B]) is not None and early.take(C, final[C]) is not None


def test_a_run_with_early_rows_writes_the_report_a_run_without_them_writes(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same corpus and local web, with and without early rows: the same report.json but the run's id."""
    local_site.route("/ok", body=b"ok")
    local_site.route("/moved", 301, headers={"Location": "/ok"})
    local_site.route("/gone", 404)
    local_site.route("/slow", body=b"ok", delay=1.0)  # the check still runs after the others answered
    urls = [local_site.url(path) for path in ("/ok", "/ok?2", "/moved", "/gone", "/slow")]
    taken: list[str] = []
    real_take = EarlyLinks.take

    def take(self: EarlyLinks, url: str, result: LinkResult) -> Any:
        row = real_take(self, url, result)
        if row is not None:
            taken.append(url)
        return row

    monkeypatch.setattr(EarlyLinks, "take", take)
    reports = {}
    for name, most in (("early", early_module.EARLY_ROWS), ("plain", 0)):
        root = tmp_path / "run"  # one folder for both: the report names the articles' paths
        shutil.rmtree(root, ignore_errors=True)
        settings = make_settings(
            root, corpus={"roots": [str(one_article_per_url(root, urls))]}, retry={"attempts": 1}
        )
        monkeypatch.setattr(runner, "EARLY_ROWS", most)
        options = RunOptions(now=lambda: DAY0, show_progress=False, mode="check-only")
        outcome = refresh(settings, options, io.StringIO())
        assert outcome.report_dir is not None
        document = json.loads((outcome.report_dir / "report.json").read_text())
        del document["run"]["id"]
        reports[name] = document
        if name == "early":
            assert set(urls[:2]) <= set(taken), "the fast answers' rows must be made early"
            assert urls[3] not in taken  # a failure's row is made at the end
            count = len(taken)
    assert len(taken) == count  # the run without early rows took none
    assert reports["early"] == reports["plain"]
    statuses = {link["url"]: link["status"] for link in reports["early"]["links"]}
    assert statuses[urls[0]] == "ok" and statuses[urls[2]] == "redirected" and statuses[urls[3]] == "failing"
