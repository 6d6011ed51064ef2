"""A report streamed from spools (as a run writes it) is the report held whole; large ones are summarised."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from localsite import LocalSite, make_settings

from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, RunOptions
from pipeline.report import files, formats, view
from pipeline.report.render import render_html, render_markdown
from pipeline.runner import refresh
from pipeline.runreport import LinkPlace, LinkRow, RunInfo, RunReport, Totals
from pipeline.spool import Spool

FIXTURES = Path(__file__).parent / "fixtures"
DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _corpus(site: LocalSite, root: Path) -> None:
    site.route("/story", body=b"<html><head><title>A story</title></head><body>x</body></html>")
    site.route("/gone", status=404)
    for n in range(12):
        (root / f"a{n:02d}.md").write_text(
            f'---\ntitle: "A{n}"\nwebUrl: "{site.url(f"/story?n={n % 5}")}"\n'
            f'related:\n  - webUrl: "{site.url("/gone", 1)}"\n  - webUrl: "htp:/broken"\n'
            f"publishedDateTime: 2023-08-09T16:38:00Z\n---\nbody\n",
            encoding="utf-8",
        )


def test_a_streamed_run_report_is_the_held_report(local_site: LocalSite, tmp_path: Path) -> None:
    """report.json (and the history's copy, Markdown, HTML, CI JSON) as one held document would give them."""
    root = tmp_path / "corpus"
    root.mkdir()
    _corpus(local_site, root)
    settings = make_settings(tmp_path, corpus={"roots": [str(root)]}, health={"hard": {"runs": 1, "days": 0}})
    outcome = refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO())
    assert outcome.exit_code is ExitCode.OK and outcome.report_dir is not None
    report = outcome.report
    assert isinstance(report.links, Spool) and len(report.links) == 7

    held = RunReport.from_json(report.to_json())  # every row as a tuple, in memory
    written = (outcome.report_dir / "report.json").read_text(encoding="utf-8")
    assert written == "".join(files.json_chunks(held))
    assert json.loads(written) == held.to_json() == report.to_json()
    assert held == report and RunReport.from_json(json.loads(written)) == report
    store = HistoryStore(settings.state.database)
    try:
        assert store.get_report(report.run.id) == json.loads(written)
    finally:
        store.close()
    assert (outcome.report_dir / "report.md").read_text(encoding="utf-8") == render_markdown(held)
    assert render_html(report, []) == render_html(held, [])
    assert formats.render(report, "json") == written
    assert formats.render(report, "compact") == formats.render(held, "compact")


@pytest.mark.parametrize(
    "name", ["report_typical.json", "report_empty.json", "report_outage.json", "report_hostile.json"]
)
def test_json_written_a_row_at_a_time_is_the_whole_document(name: str) -> None:
    """Streamed report.json: the whole document (same JSON, no raw control character), a row a line."""
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    report = RunReport.from_json(document)
    spooled = replace(
        report, links=Spool(report.links), changes=Spool(report.changes), discovered=Spool(report.discovered)
    )
    streamed = "".join(files.json_chunks(spooled))
    assert json.loads(streamed) == document == report.to_json()
    assert streamed == "".join(files.json_chunks(report))
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202e]", streamed)
    rows = [line for line in streamed.splitlines() if line.startswith('    {"url": ')]
    assert len(rows) == len(report.links)


def _large(count: int) -> RunReport:
    links = [
        LinkRow(
            f"https://h{n % 3}.example/{n:03d}",
            "failing" if n % 2 else "ok",
            500 if n % 2 else 200,
            host=f"h{n % 3}.example",
            consecutive_failures=n % 4,
            articles=(LinkPlace(f"a{n}.md", ("webUrl",), (2,)),),
        )
        for n in range(count)
    ]
    by_status = {s: 0 for s in ("ok", "redirected", "failing", "dead", "blocked", "invalid", "skipped")}
    by_status.update(ok=count - count // 2, failing=count // 2)
    run = RunInfo("20261201T030000Z-abcd", DAY0.isoformat(), DAY0.isoformat(), 1.0, 0, "refresh", None)
    totals = Totals(count, 0, count, by_status, 0, 0, 0, 0)
    return RunReport(run, totals, Spool(links))


def test_html_of_a_large_report_shows_the_first_rows_and_counts_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the caps, report.html lists the first rows of each section, counts every row, points to JSON."""
    monkeypatch.setattr(view, "MAX_SECTION_ROWS", 4)
    monkeypatch.setattr(view, "MAX_ALL_LINKS", 3)
    report = _large(20)
    page = render_html(report, [])
    failing = page.split('id="failing"')[1].split("</section>")[0]
    assert '<span class="count k-failing">10</span>' in failing
    assert failing.count('<tr data-status="failing">') == 4
    assert "Showing the first 4 of 10 rows" in failing
    # Longest failing first (3 runs), then by host and URL, as the whole list sorted would give.
    expected = sorted((lnk for lnk in report.links if lnk.status == "failing"), key=view._failing_key)[:4]
    assert [row.url for row in view._summary(report.links)[0].failing] == [lnk.url for lnk in expected]
    everything = page.split('id="all-links"')[1].split("</section>")[0]
    assert '<span class="count k-hosts">20</span>' in everything
    assert everything.count("<tr data-status=") == 3 and "Showing the first 3 of 20 rows" in everything
    assert "Failing, not yet dead (10)" in render_markdown(report)


def test_latest_kind_is_read_from_the_start_of_report_json(tmp_path: Path) -> None:
    """`latest`'s kind comes from report.json's run part, in this version's layout, the indented one and
    a one-line document alike."""
    document = json.loads((FIXTURES / "report_typical.json").read_text(encoding="utf-8"))
    latest = tmp_path / files.LATEST
    latest.mkdir()
    for kind, expected in (("complete", True), ("partial", False), ("interrupted", False)):
        document["run"]["kind"] = kind
        report = RunReport.from_json(document)
        for text in ("".join(files.json_chunks(report)), files.dump_json(document), json.dumps(document)):
            (latest / "report.json").write_text(text, encoding="utf-8")
            assert files.latest_is_complete(tmp_path) is expected
    (latest / "report.json").write_text('{"run": ', encoding="utf-8")
    assert files.latest_is_complete(tmp_path) is False


def test_one_pass_for_the_stored_copy_and_the_summary_writes_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary made while the history's copy is encoded gives the report files a second pass gives."""
    monkeypatch.setattr(view, "MAX_SECTION_ROWS", 4)
    monkeypatch.setattr(view, "MAX_ALL_LINKS", 3)
    report = _large(600)  # more rows than one encoded chunk
    stored, summary = files.stored_copy_and_summary(report)

    assert stored == files.stored_copy(report)
    assert summary == view.summarise(report)
    one = files.write_reports(report, tmp_path / "one", [], 5, stored=stored, summary=summary)
    two = files.write_reports(report, tmp_path / "two", [], 5)
    for name in ("report.json", "report.md", "report.html"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert (
        json.loads((one / "report.json").read_text(encoding="utf-8"))["links"][599]["url"]
        == report.links[599].url
    )


def test_the_first_rows_of_a_section_are_those_of_the_whole_list_sorted() -> None:
    """A section keeps the rows ``sorted()[:cap]`` keeps (ties in arrival order), and once full it holds
    no row that sorts after its last one: links arriving in order are not kept at all."""
    keys = [5, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7]
    rows = [(key, number) for number, key in enumerate(keys)]
    first = view._First[tuple[int, int]](4, lambda row: row[0])
    for row in rows:
        first.add(row)
    in_order = view._First[int](3, lambda row: row)
    for row in range(100):
        in_order.add(row)

    assert first.shown() == sorted(rows, key=lambda row: row[0])[:4] and first.shown().total == len(rows)
    assert len(in_order.rows) == 3 and in_order.shown() == [0, 1, 2] and in_order.shown().total == 100
