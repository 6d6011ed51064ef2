"""Reports: the JSON schema, Markdown and HTML rendering (sections, escaping, trend), and the run folders."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from markdown_it import MarkdownIt
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from pipeline.errors import ReportInvalid
from pipeline.report import files as _files
from pipeline.report import render as _render
from pipeline.report.schema import load_schema, validate_report
from pipeline.runreport import RunReport

FIXTURES = Path(__file__).parent / "fixtures"
REPORT_FIXTURES = ["report_typical.json", "report_empty.json", "report_outage.json", "report_hostile.json"]
STATUSES = ("ok", "redirected", "failing", "dead", "blocked", "invalid", "skipped")


def render_markdown(report: dict[str, Any], **options: Any) -> str:
    """The production renderer on the report record read back from its JSON (as ``pipeline report`` does)."""
    return _render.render_markdown(RunReport.from_json(report), **options)


def render_html(report: dict[str, Any], trend: list[dict[str, Any]]) -> str:
    """The production HTML renderer on the report record read back from its JSON."""
    return _render.render_html(RunReport.from_json(report), trend)


def write_reports(report: dict[str, Any], *args: Any, **options: Any) -> Path:
    """The production writer on the report record read back from its JSON."""
    return _files.write_reports(RunReport.from_json(report), *args, **options)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def _trend() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / "report_trend.json").read_text(encoding="utf-8"))
    return data


def _link(url: str, status: str, previous: str | None = None, **extra: Any) -> dict[str, Any]:
    link = {
        "url": url,
        "status": status,
        "http_status": None,
        "final_url": None,
        "redirects": [],
        "reason": "",
        "host": url.split("/")[2] if "://" in url else "",
        "previous_status": previous,
        "first_failed_at": None,
        "last_success_at": None,
        "consecutive_failures": 0,
        "checked_at": None,
        "articles": [{"article": f"seeds/{url.rsplit('/', 1)[-1]}.md", "field_paths": ["webUrl"]}],
    }
    link.update(extra)
    return link


def _report(links: list[dict[str, Any]], run_id: str = "20261126T030000Z-ab12", **run: Any) -> dict[str, Any]:
    counts = Counter(link["status"] for link in links)
    return {
        "schema_version": 1,
        "run": {
            "id": run_id,
            "started_at": "2026-11-26T03:00:00+00:00",
            "finished_at": "2026-11-26T03:00:10+00:00",
            "duration_seconds": 10.0,
            "exit_code": 0,
            "mode": "refresh",
            "outage": None,
            "config": {"roots": ["seeds"]},
            **run,
        },
        "totals": {
            "articles": len(links),
            "files_failed": 0,
            "urls": len(links),
            **{s: counts[s] for s in STATUSES},
            "changes": 0,
            "newly_dead": 0,
            "recovered": 0,
        },
        "links": links,
        "changes": [],
        "errors": [],
    }


# ----------------------------------------------------------------------------------------------- schema


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """report_schema.json is itself a valid JSON Schema."""
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(load_schema())


@pytest.mark.parametrize("name", REPORT_FIXTURES)
def test_fixture_runs_match_the_schema(name: str) -> None:
    """Every fixture run is a valid report.json."""
    validate_report(_load(name))


def test_helper_report_matches_the_schema() -> None:
    """The minimal report the tests build is valid too (so rendering tests use real shapes)."""
    validate_report(_report([_link("https://a.example/x", "dead", "failing")]))


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda r: r["links"][2].__setitem__("status", "gone"), "links[2].status"),
        (lambda r: r["totals"].pop("dead"), "totals"),
        (lambda r: r["run"].__setitem__("started_at", "yesterday"), "run.started_at"),
        (lambda r: r.__setitem__("schema_version", 2), "schema_version"),
        (lambda r: r["run"].__setitem__("id", "../../etc"), "run.id"),
        (lambda r: r["links"][0].__setitem__("surprise", 1), "links[0]"),
        (lambda r: r["changes"][0].pop("source"), "changes[0]"),
        (lambda r: r["refused_pages"][0].pop("reason"), "refused_pages[0]"),
        (lambda r: r["discovered"][0].pop("new"), "discovered[0]"),
    ],
)
def test_invalid_report_names_the_offending_path(mutate: Any, where: str) -> None:
    """A report that breaks the schema raises ReportInvalid naming the path of the problem."""
    report = _load("report_typical.json")
    mutate(report)

    with pytest.raises(ReportInvalid) as info:
        validate_report(report)

    assert where in str(info.value)


# --------------------------------------------------------------------------------------------- Markdown


def _md_sections(text: str) -> dict[str, str]:
    """Split Markdown into {heading: body} on '### ' headings and <summary> lines."""
    sections: dict[str, str] = {}
    current = "top"
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].split(" (")[0]
        elif line.startswith("<summary>"):
            current = line.removeprefix("<summary>").split(" (")[0].split(":")[0]
        else:
            sections[current] = sections.get(current, "") + line + "\n"
    return sections


def test_markdown_puts_each_link_in_its_sections() -> None:
    """Newly dead, still dead, recovered, failing, blocked and redirects follow the brief's definitions."""
    report = _report(
        [
            _link("https://a.example/newly-from-failing", "dead", "failing"),
            _link("https://a.example/newly-first-seen", "dead", None),
            _link("https://a.example/still-dead", "dead", "dead"),
            _link("https://a.example/back-from-dead", "ok", "dead"),
            _link("https://a.example/moved-back", "redirected", "failing", final_url="https://a.example/new"),
            _link("https://a.example/fine", "ok", "ok"),
            _link(
                "https://a.example/same-final", "redirected", "ok", final_url="https://a.example/same-final"
            ),
            _link("https://a.example/flaky", "failing", "ok"),
            _link("https://a.example/refused", "blocked", "blocked"),
        ]
    )

    sections = _md_sections(render_markdown(report))

    def where(url: str) -> set[str]:
        return {name for name, body in sections.items() if name != "top" and url + ">" in body}

    assert where("https://a.example/newly-from-failing") == {"Newly dead"}
    assert where("https://a.example/newly-first-seen") == {"Newly dead"}
    assert where("https://a.example/still-dead") == {"Still dead"}
    assert where("https://a.example/back-from-dead") == {"Recovered"}
    assert where("https://a.example/moved-back") == {"Recovered", "Permanent redirects worth updating"}
    assert where("https://a.example/fine") == set()
    assert where("https://a.example/same-final") == set()
    assert where("https://a.example/flaky") == {"Failing, not yet dead"}
    assert where("https://a.example/refused") == {"Blocked"}


def test_markdown_lists_article_paths_and_field_paths() -> None:
    """Every dead link's row names each article and the field paths that hold it."""
    report = _load("report_typical.json")

    text = render_markdown(report)

    for link in report["links"]:
        if link["status"] == "dead":
            for entry in link["articles"]:
                assert f"`{entry['article']}`" in text
                for field in entry["field_paths"]:
                    assert f"`{field}`" in text


def _md_to_html(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def test_markdown_from_the_web_cannot_inject_markup() -> None:
    """Titles, URLs and reasons render as text: no images, scripts, raw HTML or javascript: links."""
    text = render_markdown(_load("report_hostile.json"))
    html = HTMLParser(_md_to_html(text))

    for tag in ("img", "script", "svg", "b", "em", "s", "del"):
        assert html.css(tag) == [], tag
    hrefs = [a.attributes.get("href") or "" for a in html.css("a")]
    assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs)
    assert "@everyone" not in text.replace("\\@", "")


def test_markdown_tables_keep_their_columns_with_pipes_in_data() -> None:
    """A pipe in a URL, a reason or a path does not add a table cell."""
    html = HTMLParser(_md_to_html(render_markdown(_load("report_hostile.json"))))

    for table in html.css("table"):
        width = len(table.css("thead th"))
        assert all(len(row.css("td")) == width for row in table.css("tbody tr"))


def test_markdown_cuts_long_sections_and_says_how_many_more() -> None:
    """A section longer than max_rows shows max_rows rows and names how many were left out."""
    report = _report([_link(f"https://a.example/f{i}", "failing", "ok") for i in range(5)])

    text = render_markdown(report, max_rows=2)

    assert text.count("<https://a.example/f") == 2
    assert "3 more" in text


def test_markdown_warns_of_an_outage() -> None:
    """An outage run says so at the top, with the reason."""
    report = _load("report_outage.json")

    top = render_markdown(report).split("###")[0]

    assert "outage" in top.lower()
    assert "5 of 5 hosts failed below HTTP" in top


def test_markdown_of_an_empty_run_has_only_the_summary() -> None:
    """A run with nothing to report has totals and no section headings."""
    text = render_markdown(_load("report_empty.json"))

    assert "### " not in text
    assert "| 0 | 0 | 0 |" in text


def test_optional_discoveries_and_refused_pages_are_shown_when_present() -> None:
    """Canonical/AMP URLs found and untrusted pages appear in both renderings, only when the run has them."""
    report = _load("report_typical.json")
    declared = report["discovered"][0]["new"]
    refused = report["refused_pages"][0]["url"]

    md, page = render_markdown(report), render_html(report, [])
    without = {k: v for k, v in report.items() if k not in ("discovered", "refused_pages")}
    md_without, page_without = render_markdown(without), render_html(without, [])

    assert f"<{declared}>" in md and f"<{refused}>" in md
    dom = HTMLParser(page)
    assert declared in dom.css_first("#t-discovered").text()
    assert refused in dom.css_first("#t-refused").text()
    assert "Canonical and AMP" not in md_without and "not used" not in md_without
    assert HTMLParser(page_without).css("#t-discovered, #t-refused") == []


# ------------------------------------------------------------------------------------------------- HTML


def test_html_loads_nothing_from_outside() -> None:
    """The page is self-contained: no stylesheet links, no src attributes, no url() in CSS; a strict CSP."""
    page = render_html(_load("report_typical.json"), _trend())
    dom = HTMLParser(page)

    assert dom.css("link") == []
    assert [n.tag for n in dom.css("[src]")] == []
    style = "".join(n.text() for n in dom.css("style"))
    assert "url(" not in style and "@import" not in style
    csp = dom.css_first('meta[http-equiv="Content-Security-Policy"]')
    assert csp is not None
    assert "default-src 'none'" in (csp.attributes.get("content") or "")


def test_html_script_is_allowed_only_by_its_hash() -> None:
    """The CSP names the sha256 of the page's one inline script, so no other script could run."""
    dom = HTMLParser(render_html(_load("report_typical.json"), _trend()))
    scripts = dom.css("script")
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].text().encode()).digest()).decode()

    csp = dom.css_first('meta[http-equiv="Content-Security-Policy"]')
    assert csp is not None
    assert f"script-src 'sha256-{digest}'" in (csp.attributes.get("content") or "")


def test_html_escapes_everything_from_the_web() -> None:
    """Hostile titles, URLs, reasons and paths stay text: one script, no handlers, no javascript: links."""
    report = _load("report_hostile.json")
    dom = HTMLParser(render_html(report, []))

    assert len(dom.css("script")) == 1
    assert dom.css("img") == []
    assert [n.tag for n in dom.css("svg") if "chart" not in (n.attributes.get("class") or "")] == []
    for node in dom.css("*"):
        assert not any(name.startswith("on") for name in node.attributes), node.tag
    hrefs = [a.attributes.get("href") or "" for a in dom.css("a")]
    assert all(h.startswith(("http://", "https://", "#")) for h in hrefs)
    body = dom.body
    assert body is not None
    assert report["links"][0]["reason"] in body.text()


def test_html_sections_hold_the_right_links() -> None:
    """The newly-dead and redirects tables list exactly the links the definitions select."""
    report = _load("report_typical.json")
    dom = HTMLParser(render_html(report, []))

    def urls(table_id: str) -> set[str]:
        return {n.text().strip() for n in dom.css(f"#{table_id} tbody td.url:first-child")}

    newly = {
        lnk["url"] for lnk in report["links"] if lnk["status"] == "dead" and lnk["previous_status"] != "dead"
    }
    moved = {
        lnk["url"]
        for lnk in report["links"]
        if lnk["status"] == "redirected" and lnk["final_url"] and lnk["final_url"] != lnk["url"]
    }
    assert newly and urls("t-newly-dead") == newly
    assert moved and urls("t-redirects") == moved
    assert len(dom.css("#t-all tbody tr")) == len(report["links"])


def test_html_tables_are_sortable_and_filterable() -> None:
    """Every data table is marked sortable, and link tables have a filter box (with a status menu on All)."""
    dom = HTMLParser(render_html(_load("report_typical.json"), []))

    tables = dom.css("table")
    assert tables and all("sortable" in (t.attributes.get("class") or "") for t in tables)
    assert dom.css_first('input.filter[data-table="t-all"]') is not None
    options = [o.attributes.get("value") for o in dom.css('select[data-table="t-all"] option')]
    assert options == ["", *STATUSES]


def test_html_host_table_counts_statuses_per_host() -> None:
    """The per-host table shows, for each host, how many of its URLs have each status."""
    report = _load("report_typical.json")
    dom = HTMLParser(render_html(report, []))
    expected: dict[str, Counter[str]] = {}
    for link in report["links"]:
        if link["host"]:
            expected.setdefault(link["host"], Counter())[link["status"]] += 1

    shown = {}
    for row in dom.css("#t-hosts tbody tr"):
        cells = [c.text().strip() for c in row.css("td")]
        shown[cells[0]] = dict(zip(STATUSES, map(int, cells[2:9]), strict=True))

    assert shown == {host: {s: c[s] for s in STATUSES} for host, c in expected.items()}


def test_trend_chart_has_one_bar_per_run_and_marks_this_run() -> None:
    """The chart draws one bar per run in the history, with this run highlighted and outages faded."""
    trend = _trend()
    dom = HTMLParser(render_html(_load("report_typical.json"), trend))

    bars = dom.css("svg.chart g.bar")
    assert len(bars) == len(trend)
    assert len(dom.css("svg.chart g.bar.current")) == 1
    assert len(dom.css("svg.chart g.bar.outage")) == sum(1 for t in trend if t["outage"])


def test_trend_of_a_past_run_stops_at_that_run() -> None:
    """Re-rendering an old run shows only the runs up to it, not the ones that came later."""
    trend = _trend()
    past = trend[5]
    report = _load("report_typical.json")
    report["run"].update(id=past["id"], started_at=past["started_at"])

    dom = HTMLParser(render_html(report, trend))

    assert len(dom.css("svg.chart g.bar")) == len(trend) - 5
    current = dom.css_first("svg.chart g.bar.current title")
    assert current is not None and past["id"] in current.text()


def test_trend_without_history_shows_this_run() -> None:
    """With an empty history the chart still shows this run's bar."""
    dom = HTMLParser(render_html(_load("report_typical.json"), []))

    assert len(dom.css("svg.chart g.bar.current")) == 1


# CI installs chromium (.ci/run) and sets CI=true, so there a missing browser fails instead of skipping.
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"), reason="chromium is not installed"
)
def test_hostile_page_in_a_real_browser(tmp_path: Path) -> None:
    """In headless Chromium the page's script runs under its CSP and no hostile markup becomes live."""
    page = tmp_path / "report.html"
    page.write_text(render_html(_load("report_hostile.json"), _trend()), encoding="utf-8")
    profile = tmp_path / "profile"

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

    dom = HTMLParser(result.stdout)
    html = dom.css_first("html")
    assert html is not None and html.attributes.get("data-ready") == "1"
    title = dom.css_first("head title")
    assert title is not None and "pwned" not in title.text()
    assert dom.css("img") == []


# ------------------------------------------------------------------------------------------------ write


def test_write_reports_writes_three_files_and_latest(tmp_path: Path) -> None:
    """A run folder gets report.json/md/html; `latest` points at it; the JSON is the report."""
    report = _load("report_typical.json")

    run_dir = write_reports(report, tmp_path / "reports", _trend(), keep_runs=5)

    assert run_dir == tmp_path / "reports" / report["run"]["id"]
    assert json.loads((run_dir / "report.json").read_text()) == report
    assert (run_dir / "report.md").read_text().startswith("## Link health report")
    assert "<!DOCTYPE html>" in (run_dir / "report.html").read_text()
    latest = tmp_path / "reports" / "latest"
    assert latest.resolve() == run_dir.resolve()
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "report.json", "report.md"]


def test_rerender_from_json_matches_what_was_written(tmp_path: Path) -> None:
    """`pipeline report` re-rendering the stored JSON gives the same Markdown as the run wrote."""
    run_dir = write_reports(_load("report_typical.json"), tmp_path, [], keep_runs=5)

    stored = json.loads((run_dir / "report.json").read_text())

    assert render_markdown(stored) == (run_dir / "report.md").read_text()


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temporary folder Jinja keeps compiled templates in, here; fresh environments before and after."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _render._environments.cache_clear()
    yield tmp_path
    _render._environments.cache_clear()


def _both(report: dict[str, Any]) -> tuple[str, str]:
    """Markdown and HTML of ``report`` from freshly made environments (as a new process makes them)."""
    _render._environments.cache_clear()
    return render_markdown(report), render_html(report, _trend())


def test_compiled_templates_are_reused_and_a_damaged_entry_is_compiled_again(
    private_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second process compiles no template; damaged or unusable cache entries change no report."""
    report = _load("report_typical.json")
    compiled: list[str] = []
    real_compile = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, name: str | None = None, *args: Any) -> Any:
        compiled.append(str(name))
        return real_compile(self, source, name, *args)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)

    first = _both(report)
    entries = sorted((private_temp / f"_jinja2-cache-{os.getuid()}").iterdir())
    assert sorted(compiled) == ["report.html.j2", "report.md.j2"] and len(entries) == 2

    compiled.clear()
    assert _both(report) == first
    assert compiled == []

    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:40] + b"damaged")
    assert _both(report) == first
    assert sorted(compiled) == ["report.html.j2", "report.md.j2"]

    compiled.clear()
    for entry in entries:
        entry.unlink()
    entries[0].parent.chmod(0o755)  # Jinja uses no folder that others may read
    assert _both(report) == first
    assert sorted(compiled) == ["report.html.j2", "report.md.j2"]


def _run(i: int) -> dict[str, Any]:
    return _report([], run_id=f"2026112{i}T030000Z-{i:04d}", started_at=f"2026-11-2{i}T03:00:00+00:00")


def test_latest_follows_the_newest_run_and_old_runs_are_pruned(tmp_path: Path) -> None:
    """With keep_runs=2, only the two newest run folders stay, and unrelated folders are never touched."""
    reports = tmp_path / "reports"
    (reports / "notes").mkdir(parents=True)
    (reports / "notes" / "keep.txt").write_text("mine")

    for i in range(1, 5):
        last = write_reports(_run(i), reports, [], keep_runs=2)

    names = sorted(p.name for p in reports.iterdir())
    assert names == ["20261123T030000Z-0003", "20261124T030000Z-0004", "latest", "notes"]
    assert (reports / "latest").resolve() == last.resolve()
    assert (reports / "notes" / "keep.txt").read_text() == "mine"


def test_latest_is_a_copy_where_symlinks_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without symlinks, `latest` is a copied folder, replaced whole by the next run."""

    def no_symlinks(*args: Any, **kwargs: Any) -> None:
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    reports = tmp_path / "reports"

    write_reports(_run(1), reports, [], keep_runs=5)
    write_reports(_run(2), reports, [], keep_runs=5)

    latest = reports / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    assert json.loads((latest / "report.json").read_text())["run"]["id"] == "20261122T030000Z-0002"
    assert sorted(p.name for p in reports.iterdir()) == [
        "20261121T030000Z-0001",
        "20261122T030000Z-0002",
        "latest",
    ]


def test_symlink_latest_replaces_an_old_copied_latest(tmp_path: Path) -> None:
    """A `latest` folder left by a copy is replaced by a symlink once symlinks work."""
    reports = tmp_path / "reports"
    (reports / "latest").mkdir(parents=True)
    (reports / "latest" / "report.json").write_text("{}")

    run_dir = write_reports(_run(1), reports, [], keep_runs=5)

    assert (reports / "latest").is_symlink()
    assert (reports / "latest").resolve() == run_dir.resolve()


@pytest.mark.parametrize("run_id", ["../escape", "latest", "a/b", ""])
def test_run_id_that_is_not_a_folder_name_is_refused(tmp_path: Path, run_id: str) -> None:
    """A run id that could leave the reports folder (or clobber `latest`) is refused before writing."""
    report = _run(1)
    report["run"]["id"] = run_id

    with pytest.raises(ValueError, match=r"run\.id"):
        write_reports(report, tmp_path / "reports", [], keep_runs=5)

    assert not (tmp_path / "escape").exists()


def test_datetimes_are_written_as_iso_strings(tmp_path: Path) -> None:
    """A datetime left in the dict by the runner is written as an ISO 8601 string that validates."""
    from datetime import UTC, datetime

    report = _run(1)
    report["run"]["started_at"] = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    report = copy.deepcopy(report)

    run_dir = write_reports(report, tmp_path, [], keep_runs=5)

    stored = json.loads((run_dir / "report.json").read_text())
    assert stored["run"]["started_at"] == "2026-11-21T03:00:00+00:00"
    validate_report(stored)


def _large_report(scale: int) -> dict[str, Any]:
    """A generated run with every section long, article paths deep and five articles per link."""

    def articles(i: int) -> list[dict[str, Any]]:
        return [
            {
                "article": f"content/news/2026/{i:05d}/{j}-a-rather-long-article-slug.md",
                "field_paths": ["webUrl"],
            }
            for j in range(6)
        ]

    kinds = [("dead", "failing"), ("ok", "dead"), ("failing", "ok"), ("dead", "dead"), ("blocked", "ok")]
    kinds += [("invalid", None), ("redirected", "ok")]
    links = []
    for i in range(scale):
        status, previous = kinds[i % len(kinds)]
        extra: dict[str, Any] = {"reason": f"HTTP 404 Not Found after a long chain of events number {i}"}
        if status == "redirected":
            extra["final_url"] = f"https://new.example.org/moved/{i}/somewhere-else"
        link = _link(f"https://host{i % 50}.example.org/path/{i}/story-slug", status, previous, **extra)
        link["articles"] = articles(i)
        links.append(link)
    report = _report(links)
    report["errors"] = [
        {"article": f"content/{i}/broken.md", "message": f"front-matter is not valid YAML: line {i}"}
        for i in range(scale // 5)
    ]
    report["changes"] = [
        {"article": f"content/{i}.md", "field_path": "excerpt", "old": None, "new": "x" * 200, "source": None}
        for i in range(scale // 2)
    ]
    return report


@pytest.mark.parametrize("scale", [3_000, 30_000])
def test_markdown_of_a_large_run_stays_under_githubs_limit(scale: int) -> None:
    """A huge run's report.md stays under 60,000 characters, important sections first, and counts the cuts."""
    report = _large_report(scale)

    text = render_markdown(report)

    assert len(text) < 60_000
    heads = [line for line in text.splitlines() if line.startswith("### ")]
    assert [h.split(" (")[0] for h in heads[:3]] == ["### Newly dead", "### Recovered", "### File errors"]
    shown = sum(
        1
        for line in text.splitlines()
        if line.startswith("| <https://host") or line.startswith("| `content/")
    )
    every = sum(1 for _ in report["links"] if _["status"] != "ok" or _["previous_status"] == "dead")
    every += len(report["errors"]) + len(report["changes"])
    match = re.search(r"\*\*(\d+) rows left out\*\* of the sections below", text)
    assert match is not None and int(match.group(1)) == every - shown
    assert "report.html and report.json" in text
    assert text.count("<details>") == text.count("</details>") >= 3
    assert "<https://host0.example.org/path/0/story-slug>" in text  # the first newly dead link is shown


def test_incomplete_runs_and_outage_streaks_are_shown() -> None:
    """A partial run says so in both renderings and is drawn dashed; an outage streak says since when."""
    trend = _trend()
    partial = _report(
        [], run_id="20261201T030000Z-0001", started_at="2026-12-01T03:00:00+00:00", kind="partial"
    )
    streak = {"runs": 3, "since": "2026-11-28T03:00:00+00:00"}
    outage = _report([], outage="all 3 hosts failed below HTTP", outage_streak=streak)

    page = HTMLParser(render_html(partial, [*trend, {**trend[0], "id": "x-1", "kind": "interrupted"}]))
    md = render_markdown(partial)
    outage_md, outage_html = render_markdown(outage), render_html(outage, [])

    assert "Not a complete run:** partial: only some paths or --include URLs were checked" in md
    banner = page.css_first(".banner.incomplete")
    assert banner is not None and "partial" in banner.text()
    current = page.css_first("svg.chart g.bar.current")
    assert current is not None and "incomplete" in (current.attributes.get("class") or "")
    assert "(partial: only some paths or --include URLs were checked)" in current.text()
    assert any("interrupted" in bar.text() for bar in page.css("svg.chart g.bar.incomplete"))
    validate_report(partial)
    validate_report(outage)
    for text in (outage_md, outage_html):
        assert "down for 3 complete runs in a row, since 2026-11-28 03:00 UTC" in text
