"""CI outputs: compact/json/markdown/junit/sarif, --output, --fail-on, ignore files; schemas validated."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import xmlschema
import yaml
from localsite import LocalSite, make_settings

from pipeline.frontmatter.document import parse
from pipeline.links import extract_refs
from pipeline.models import RunOptions
from pipeline.report import formats
from pipeline.runner import refresh
from pipeline.runreport import RunReport

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def render(report: dict[str, object], fmt: str) -> str:
    """The production CI renderer on the report record read back from its JSON."""
    return formats.render(RunReport.from_json(report), fmt)


def _corpus(tmp_path: Path, site: LocalSite) -> Path:
    site.route("/fine", status=200)
    site.route("/gone", status=404)
    site.route("/robots-hater", status=403)
    site.route("/ignored", status=404)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text(
        "---\n"
        'title: "A"\n'
        f'webUrl: "{site.url("/fine")}"\n'
        "related:\n"
        '  - title: "gone"\n'
        f'    webUrl: "{site.url("/gone")}"\n'
        f'  - webUrl: "{site.url("/robots-hater")}"\n'
        f'  - webUrl: "{site.url("/ignored")}"\n'
        "---\nbody\n",
        encoding="utf-8",
    )
    (corpus / ".lycheeignore").write_text("# links we know about\n\n/ignored$\n", encoding="utf-8")
    return corpus


def _settings_data(tmp_path: Path, corpus: Path, site: LocalSite) -> dict[str, object]:
    return {
        "corpus": {"roots": [str(corpus)]},
        "http": {
            "allow_networks": ["127.0.0.0/8"],
            "connect_timeout": 2,
            "read_timeout": 2,
            "total_timeout": 5,
            "hosts": {f"{site.addresses[0]}:{site.ports[0]}": {"accept": ["200..=299", 403]}},
        },
        "retry": {"attempts": 1},
        "health": {"hard": {"runs": 1, "days": 0}, "archive": {"enabled": False}},
        "metadata": {"enabled": False},
        "state": {"dir": str(tmp_path / "state")},
        "reports": {"dir": str(tmp_path / "reports")},
    }


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _config(tmp_path: Path, corpus: Path, site: LocalSite) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(_settings_data(tmp_path, corpus, site)), encoding="utf-8")
    return path


def _run_report(tmp_path: Path, site: LocalSite) -> dict[str, object]:
    corpus = _corpus(tmp_path, site)
    data = _settings_data(tmp_path, corpus, site)
    settings = make_settings(
        tmp_path, **{k: v for k, v in data.items() if k in ("http", "health", "metadata")}
    )
    settings = settings.model_copy(update={"corpus": settings.corpus.model_copy(update={"roots": [corpus]})})
    return refresh(
        settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO()
    ).report.to_json()


def test_ci_run_junit_file_validates_and_fail_on_dead_exits_8(local_site: LocalSite, tmp_path: Path) -> None:
    """A CI run writes valid JUnit (dead link failed, accepted 403 passed, ignored skipped) and exits 8."""
    corpus = _corpus(tmp_path, local_site)
    config = _config(tmp_path, corpus, local_site)
    out = tmp_path / "links.xml"
    result = _cli(
        tmp_path,
        "refresh",
        "-q",
        "--config",
        str(config),
        "--format",
        "junit",
        "--output",
        str(out),
        "--fail-on",
        "dead",
    )
    assert result.returncode == 8, result.stderr
    assert result.stdout == ""
    xmlschema.XMLSchema(FIXTURES / "junit.xsd").validate(str(out))
    cases = {
        case["@name"]: case
        for case in xmlschema.XMLSchema(FIXTURES / "junit.xsd").to_dict(str(out))["testsuite"][0]["testcase"]
    }
    gone = cases[local_site.url("/gone")]
    assert gone["failure"]["@type"] == "dead"
    assert f"{corpus / 'a.md'}:6 related[0].webUrl" in gone["failure"]["$"]
    assert "failure" not in cases[local_site.url("/robots-hater")]
    assert "skipped" in cases[local_site.url("/ignored")]
    assert (local_site.count("/ignored"), local_site.count("/robots-hater") > 0) == (0, True)


def test_default_exit_stays_0_with_dead_links(local_site: LocalSite, tmp_path: Path) -> None:
    """Without --fail-on a run with dead links exits 0; JSON goes to stdout, logs to stderr."""
    corpus = _corpus(tmp_path, local_site)
    result = _cli(
        tmp_path, "refresh", "--config", str(_config(tmp_path, corpus, local_site)), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    statuses = {link["url"]: link["status"] for link in document["links"]}
    assert statuses[local_site.url("/gone")] == "dead"
    assert statuses[local_site.url("/robots-hater")] == "ok"  # the accepted 403 is not reported
    ignored = next(link for link in document["links"] if link["url"] == local_site.url("/ignored"))
    assert ignored["status"] == "skipped"
    assert ".lycheeignore:3 (/ignored$)" in ignored["reason"]
    assert "run " in result.stderr


def test_fail_on_failing_does_not_fire_on_dead_only(local_site: LocalSite, tmp_path: Path) -> None:
    """`--fail-on failing --fail-on blocked` exits 0 when the only bad link is dead."""
    corpus = _corpus(tmp_path, local_site)
    config = str(_config(tmp_path, corpus, local_site))
    result = _cli(
        tmp_path, "refresh", "-q", "--config", config, "--fail-on", "failing", "--fail-on", "blocked"
    )
    assert result.returncode == 0, result.stderr


def test_cli_exclude_and_include(local_site: LocalSite, tmp_path: Path) -> None:
    """`--exclude REGEX` skips a URL naming the rule; `--include REGEX` checks only matching URLs."""
    corpus = _corpus(tmp_path, local_site)
    config = str(_config(tmp_path, corpus, local_site))
    excluded = _cli(tmp_path, "refresh", "-q", "--config", config, "--format", "json", "--exclude", "/gone$")
    links = {link["url"]: link for link in json.loads(excluded.stdout)["links"]}
    assert links[local_site.url("/gone")]["reason"] == "excluded by --exclude (/gone$)"
    assert local_site.count("/gone") == 0
    included = _cli(tmp_path, "refresh", "-q", "--config", config, "--format", "json", "--include", "/fine$")
    links = {link["url"]: link for link in json.loads(included.stdout)["links"]}
    assert links[local_site.url("/gone")]["status"] == "skipped"
    assert "include" in links[local_site.url("/gone")]["reason"]
    bad = _cli(tmp_path, "refresh", "--config", config, "--exclude", "(")
    assert bad.returncode == 2 and "not a regular expression" in bad.stderr


def test_bad_lycheeignore_line_is_a_config_error(local_site: LocalSite, tmp_path: Path) -> None:
    """A `.lycheeignore` line that is not a regex stops the run with exit 3 naming file and line."""
    corpus = _corpus(tmp_path, local_site)
    (corpus / ".lycheeignore").write_text("ok\n[unclosed\n", encoding="utf-8")
    result = _cli(tmp_path, "refresh", "--config", str(_config(tmp_path, corpus, local_site)))
    assert result.returncode == 3
    assert ".lycheeignore:2" in result.stderr


def test_sarif_validates_and_points_at_the_field_line(local_site: LocalSite, tmp_path: Path) -> None:
    """SARIF 2.1.0 output is schema-valid with one result per dead link per article at the field's line."""
    report = _run_report(tmp_path, local_site)
    document = json.loads(render(report, "sarif"))
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(
        document
    )
    (result,) = document["runs"][0]["results"]
    assert result["ruleId"] == "dead-link" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": 6}
    assert location["artifactLocation"]["uri"].endswith("corpus/a.md")


def test_compact_and_markdown_formats(local_site: LocalSite, tmp_path: Path) -> None:
    """Compact prints one line per dead link with its place; markdown is the report.md text."""
    report = _run_report(tmp_path, local_site)
    compact = render(report, "compact")
    assert f"[DEAD] {local_site.url('/gone')} (HTTP 404" in compact
    assert "a.md:6 related[0].webUrl" in compact
    assert "robots-hater" not in compact
    assert render(report, "markdown").startswith("## Link health report")


def test_line_of_reads_field_lines_from_the_parse() -> None:
    """Refs carry the file line of their field's key, nested and in lists, from the same parse."""
    doc = parse(
        b"---\ntitle: t\nwebUrl: https://a.example/\nrelated:\n  - title: x\n"
        b"    webUrl: https://b.example/\n    images:\n      - url: https://c.example/i.png\n---\n"
    )
    refs = extract_refs(Path("x.md"), doc.data, make_settings(Path("/tmp")).links, doc.line_of)
    assert {ref.field_path: ref.line for ref in refs} == {
        "webUrl": 3,
        "related[0].webUrl": 6,
        "related[0].images[0].url": 8,
    }
    assert doc.line_of(("nothing",)) is None


@pytest.mark.parametrize("fmt", ["junit", "sarif"])
def test_hostile_urls_still_give_valid_documents(fmt: str) -> None:
    """Control characters and spaces in an invalid URL cannot break the XML or JSON document."""
    report = {
        "run": {
            "id": "r",
            "started_at": DAY0.isoformat(),
            "finished_at": DAY0.isoformat(),
            "duration_seconds": 1.5,
            "mode": "refresh",
            "outage": None,
            "exit_code": 0,
        },
        "totals": {"urls": 1, "articles": 1, "files_failed": 0, "dead": 1},
        "links": [
            {
                "url": "https://x.example/\x01 a  b<&>",
                "status": "dead",
                "reason": "HTTP 404\x02",
                "host": "",
                "http_status": 404,
                "articles": [{"article": "a b.md", "field_paths": ["webUrl"], "lines": [2]}],
            }
        ],
    }
    text = render(report, fmt)
    if fmt == "junit":
        xmlschema.XMLSchema(FIXTURES / "junit.xsd").validate(text)
    else:
        assert (
            json.loads(text)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"][
                "uri"
            ]
            == "a%20b.md"
        )


def test_dry_run_plan_moves_to_stderr_when_stdout_carries_the_format(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """`--dry-run --format json` keeps standard output pure JSON: the plan and diffs go to standard error."""
    corpus = _corpus(tmp_path, local_site)
    config = str(_config(tmp_path, corpus, local_site))
    result = _cli(tmp_path, "refresh", "--dry-run", "--config", config, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run"]["mode"] == "dry-run"
    assert "plan: 1 articles" in result.stderr


def test_report_command_re_renders_a_past_run_as_sarif(local_site: LocalSite, tmp_path: Path) -> None:
    """`pipeline report --format sarif` renders the latest stored run in a CI format."""
    corpus = _corpus(tmp_path, local_site)
    config = str(_config(tmp_path, corpus, local_site))
    assert _cli(tmp_path, "refresh", "-q", "--config", config).returncode == 0
    result = _cli(tmp_path, "report", "--config", config, "--format", "sarif")
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)["runs"][0]["results"]
    assert local_site.url("/gone") in found["message"]["text"]


def test_sarif_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute article path inside the working directory becomes a relative URI; outside, file://."""
    monkeypatch.chdir(tmp_path)
    link = {
        "url": "https://x.example/",
        "status": "dead",
        "reason": "HTTP 404",
        "http_status": 404,
        "host": "x",
    }
    report = {
        "run": {"id": "r", "started_at": DAY0.isoformat(), "finished_at": DAY0.isoformat(), "exit_code": 0},
        "links": [
            {**link, "articles": [{"article": str(tmp_path / "posts" / "a.md"), "field_paths": ["webUrl"]}]},
            {**link, "articles": [{"article": "/elsewhere/b.md", "field_paths": ["webUrl"]}]},
        ],
    }
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(render(report, "sarif"))["runs"][0]["results"]
    ]
    assert uris == ["posts/a.md", "file:///elsewhere/b.md"]


def test_sarif_relative_uris_have_a_base_and_never_leave_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative URIs name %SRCROOT% (the working directory); `..` paths become file:// URIs; lines >= 1."""
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    link = {"url": "https://x.example/", "status": "dead", "reason": "HTTP 404", "http_status": 404}
    report = {
        "run": {"id": "r", "started_at": DAY0.isoformat(), "finished_at": DAY0.isoformat(), "exit_code": 0},
        "links": [
            {**link, "articles": [{"article": "posts/a.md", "field_paths": ["webUrl"], "lines": [3]}]},
            {**link, "articles": [{"article": "../other/b.md", "field_paths": ["webUrl"]}]},
        ],
    }
    (run,) = json.loads(render(report, "sarif"))["runs"]
    locations = [r["locations"][0]["physicalLocation"] for r in run["results"]]

    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": (tmp_path / "repo").as_uri() + "/"}}
    assert locations[0] == {
        "artifactLocation": {"uri": "posts/a.md", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3},
    }
    assert locations[1] == {
        "artifactLocation": {"uri": (tmp_path / "other" / "b.md").as_uri()},
        "region": {"startLine": 1},
    }


def test_junit_classname_groups_by_host_the_way_jenkins_splits_it() -> None:
    """Jenkins splits classname at its last dot: package `links`, class = the whole host (dots kept apart)."""
    report = {
        "run": {
            "id": "r",
            "started_at": DAY0.isoformat(),
            "finished_at": DAY0.isoformat(),
            "duration_seconds": 1.0,
            "mode": "refresh",
            "outage": None,
            "exit_code": 0,
        },
        "totals": {"urls": 1, "articles": 1, "files_failed": 0, "ok": 1},
        "links": [{"url": "https://www.example.com:8443/a", "status": "ok", "host": "www.example.com:8443"}],
    }
    case = xmlschema.XMLSchema(FIXTURES / "junit.xsd").to_dict(render(report, "junit"))["testsuite"][0][
        "testcase"
    ][0]
    package, _, klass = case["@classname"].rpartition(".")
    assert (package, klass) == ("links", "www_example_com:8443")
