"""The one escaping function and every text output using it: log, summary, report.md/.html/.json."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localsite import LocalSite, make_settings

from pipeline.console import setup_logging
from pipeline.health.history import HistoryStore
from pipeline.job import run_once
from pipeline.models import ExitCode, RunOptions
from pipeline.report import render as _render
from pipeline.report.files import dump_json
from pipeline.runner import refresh
from pipeline.runreport import RunReport
from pipeline.text import printable

# Raw control characters that must never reach a terminal or a report: C0 (but the line feed of the text
# itself), DEL, C1, the Unicode line separators, the bidi overrides, and lone surrogates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HOSTILE = "a\x1b]0;owned\x07b\x1b[2Jc\nFORGED LINE\rd\x9be\u202ef\x00g"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcödé, emoji 🎉", "plain text, ünïcödé, emoji 🎉"),
        ("esc\x1b[31mred", "esc\\x1b[31mred"),
        ("bell\x07", "bell\\x07"),
        ("two\nlines\r\n", "two\\nlines\\r\\n"),
        ("tab\there", "tab\\there"),
        ("del\x7f c1\x9b nul\x00", "del\\x7f c1\\x9b nul\\x00"),
        ("rtl\u202eoverride \u2028sep", "rtl\\u202eoverride \\u2028sep"),
        (os.fsdecode(b"x\xff.md"), "x\\xff.md"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
)
def test_printable_escapes_controls_and_undecodable_bytes(raw: str, shown: str) -> None:
    """Controls, name bytes that are not UTF-8, separators and bidi overrides show as visible escapes."""
    assert printable(raw) == shown
    assert printable(shown) == shown  # escaping twice changes nothing more


def render_markdown(report: dict[str, Any], **options: Any) -> str:
    """The production renderer on the report record read back from its JSON (as ``pipeline report`` does)."""
    return _render.render_markdown(RunReport.from_json(report), **options)


def render_html(report: dict[str, Any], trend: list[dict[str, Any]]) -> str:
    """The production HTML renderer on the report record read back from its JSON."""
    return _render.render_html(RunReport.from_json(report), trend)


def test_printable_takes_paths_and_bytes() -> None:
    """A path or a bytes name is decoded the way the file system does, then escaped."""
    assert printable(Path(os.fsdecode(b"dir/x\xff\x1b.md"))) == "dir/x\\xff\\x1b.md"
    assert printable(b"x\xff.md") == "x\\xff.md"
    assert printable(404) == "404"


def test_text_log_line_stays_one_printable_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A name or web text with ESC, BEL or a newline cannot set a title, clear the screen or forge a line."""
    setup_logging("text", "INFO", quiet=False)

    logging.getLogger("pipeline.test").warning("%s: cannot read", HOSTILE)

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not RAW.search(err)
    assert "a\\x1b]0;owned\\x07b\\x1b[2Jc\\nFORGED LINE\\rd\\x9be\\u202ef\\x00g: cannot read" in err


def test_text_log_traceback_keeps_its_lines_but_escapes_inside_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A traceback keeps its line breaks; a hostile exception message inside it is escaped."""
    setup_logging("text", "INFO", quiet=False)
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        logging.getLogger("pipeline.test").exception("stage failed")

    err = capsys.readouterr().err
    assert "Traceback (most recent call last):\n" in err
    assert "RuntimeError: a\\x1b]0;owned" in err and "FORGED LINE" in err
    assert not any(line.startswith("FORGED") for line in err.splitlines())
    assert not RAW.search(err)


def test_json_log_line_is_escaped_and_valid_utf8(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """JSON lines carry escaped text (a collector printing them stays safe) and are valid UTF-8."""
    setup_logging("json", "INFO", quiet=False)
    name = os.fsdecode(b"x\xff.md")

    logging.getLogger("pipeline.test").warning("%s %s", name, HOSTILE, extra={"article": name})

    raw = capsysbinary.readouterr().err
    entry = json.loads(raw.decode("utf-8"))
    assert entry["message"] == "x\\xff.md " + printable(HOSTILE)
    assert entry["article"] == "x\\xff.md"
    assert not RAW.search(entry["message"])


def _report(reason: str, title: str, article: str) -> dict[str, Any]:
    link = {
        "url": "https://example.org/x",
        "status": "failing",
        "http_status": 404,
        "final_url": None,
        "redirects": [],
        "reason": reason,
        "host": "example.org",
        "previous_status": "dead",
        "first_failed_at": None,
        "last_success_at": None,
        "consecutive_failures": 1,
        "checked_at": None,
        "articles": [{"article": article, "field_paths": ["webUrl"]}],
    }
    change = {"article": article, "field_path": "title", "old": "t", "new": title, "source": link["url"]}
    return {
        "schema_version": 1,
        "run": {
            "id": "20261126T030000Z-ab12",
            "started_at": "2026-11-26T03:00:00+00:00",
            "finished_at": "2026-11-26T03:00:10+00:00",
            "duration_seconds": 10.0,
            "exit_code": 1,
            "mode": "refresh",
            "outage": None,
            "config": {"roots": ["seeds"]},
        },
        "totals": {
            **dict.fromkeys(("ok", "redirected", "dead", "blocked", "invalid", "skipped", "newly_dead"), 0),
            **{"articles": 1, "files_failed": 1, "urls": 1, "failing": 1, "changes": 1, "recovered": 0},
        },
        "links": [link],
        "changes": [change],
        "discovered": [change],
        "refused_pages": [{"url": link["url"], "reason": title}],
        "errors": [{"article": article, "message": reason}],
    }


def test_reports_hold_no_raw_control_characters() -> None:
    """report.md, report.html and report.json show hostile reasons, titles and names escaped, never raw."""
    report = _report(f"HTTP 404 {HOSTILE}", f"Title {HOSTILE}", f"dir/{HOSTILE}.md")

    markdown = render_markdown(report)
    html = render_html(report, [])
    text = dump_json(report)

    for output in (markdown, html, text):
        assert not RAW.search(output.replace("\t", " "))
    assert "a\\\\x1b\\]0;owned\\\\x07b" in markdown  # the escape, itself escaped for Markdown
    assert "a\\x1b]0;owned\\x07b" in html
    assert json.loads(text) == report  # JSON keeps the data exactly; only its spelling is escaped


def _raw_http_server(status_line: bytes) -> tuple[socket.socket, int]:
    """A loopback server answering every request with ``status_line`` (aiohttp refuses to send such lines)."""
    server = socket.socket()
    server.bind(("127.0.0.9", 0))
    server.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(status_line + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_refresh_with_hostile_names_and_reasons_finishes_and_escapes_everything(
    tmp_path: Path, local_site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names that are not UTF-8 or hold ESC/newlines, and an ESC/BEL reason phrase: the run finishes, its
    history row is complete, and the log, summary line and reports hold only printable text."""
    server, port = _raw_http_server(b"HTTP/1.1 404 Gone\x1b]0;owned\x07\x1b[2J")
    local_site.route("/ok")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bad_bytes = os.fsdecode(b"x\xff.md")
    esc_name = "e\x1b[2J\nFORGED WARNING.md"
    (corpus / bad_bytes).write_text(f'---\nwebUrl: "http://127.0.0.9:{port}/gone"\n---\n', encoding="utf-8")
    (corpus / esc_name).write_text(f'---\nwebUrl: "{local_site.url("/ok")}"\n---\n', encoding="utf-8")
    (corpus / os.fsdecode(b"broken\xfe\x07.md")).write_text("---\n[unclosed\n---\n", encoding="utf-8")
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    setup_logging("text", "INFO", quiet=False)
    try:
        code = run_once(settings, threading.Event(), quiet=True)
    finally:
        server.close()

    assert code == ExitCode.FILES_FAILED  # the broken file; the others were checked
    err = capsys.readouterr().err
    assert not RAW.search(err.replace("\n", " "))
    assert not any(line.startswith("FORGED") for line in err.splitlines())
    assert "broken\\xfe\\x07.md" in err and "run " in err
    with HistoryStore(settings.state.database) as store:
        (run,) = store.list_runs(5)
        stored = store.get_report(None)
    assert run["finished_at"] is not None and run["exit_code"] == ExitCode.FILES_FAILED
    assert stored is not None
    articles = {entry["article"] for link in stored["links"] for entry in link["articles"]}
    assert articles == {f"{corpus}/x\\xff.md", f"{corpus}/e\\x1b[2J\\nFORGED WARNING.md"}
    reasons = {link["reason"] for link in stored["links"]}
    assert any(r.startswith("HTTP 404 Gone\x1b]0;owned\x07\x1b[2J") for r in reasons)  # data kept as is
    latest = settings.reports.dir / "latest"
    for name in ("report.md", "report.html", "report.json"):
        text = (latest / name).read_bytes().decode("utf-8")
        assert not RAW.search(text.replace("\t", " ")), name
    assert "Gone\\x1b]0;owned\\x07" in (latest / "report.html").read_text(encoding="utf-8")


def test_dry_run_plan_and_diff_are_printable(tmp_path: Path, local_site: LocalSite) -> None:
    """The dry run's plan and diff headers show a hostile file name escaped, one line each."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = "d\x1b[2J\nFORGED.md"
    (corpus / name).write_text('---\nwebUrl: "htp:/bad"\n---\n', encoding="utf-8")
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    out = io.StringIO()

    refresh(settings, RunOptions(dry_run=True, show_progress=False), out)

    assert "d\\x1b[2J\\nFORGED.md: webUrl" in out.getvalue()
    assert not RAW.search(out.getvalue()) and "\nFORGED" not in out.getvalue()


def test_ci_formats_hold_no_raw_control_characters() -> None:
    """The compact, JSON and SARIF results for CI show hostile names and reasons escaped, never raw."""
    from pipeline.report.formats import render as render_record

    def render(report: dict[str, Any], fmt: str) -> str:
        return render_record(RunReport.from_json(report), fmt)

    report = _report(f"HTTP 404 {HOSTILE}", f"Title {HOSTILE}", f"dir/{HOSTILE}.md")

    for fmt in ("compact", "json", "sarif"):
        assert not RAW.search(render(report, fmt).replace("\t", " ")), fmt
    assert "a\\x1b]0;owned\\x07b" in render(report, "compact")


def test_json_log_extra_values_hold_no_raw_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    """Structured ``extra=`` values (lists, dicts) in a JSON log line carry no raw C1 control or override."""
    setup_logging("json", "INFO", quiet=False)

    logging.getLogger("pipeline.test").info("done", extra={"hosts": ["a\x9b2J", "b\u202ec"]})

    err = capsys.readouterr().err
    assert not RAW.search(err.replace("\n", " "))
    assert json.loads(err)["hosts"] == ["a\x9b2J", "b\u202ec"]  # same data, only spelled as escapes
