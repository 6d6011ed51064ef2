"""The RunReport record: report.json read back unchanged, reports stored by earlier code rendered as they
were, and `pipeline report --validate`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.health.history import HistoryStore
from pipeline.report.runs import render_stored, stored_report
from pipeline.runreport import RunReport

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STORED = FIXTURES / "stored_v1"


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(
    "path",
    [
        STORED / "report.json",
        *(FIXTURES / f"report_{n}.json" for n in ("typical", "hostile", "outage", "empty")),
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_report_json_reads_back_into_the_same_document(path: Path) -> None:
    """from_json then to_json gives the very document back: same keys (none added, none lost), same values."""
    document = _load(path)
    assert RunReport.from_json(document).to_json() == document


def test_a_report_stored_before_runreport_renders_as_it_did() -> None:
    """A report the code before RunReport stored renders to the same Markdown, compact and JUnit text."""
    report = stored_report(_load(STORED / "report.json"))
    assert report is not None
    for fmt, name in (("md", "report.md"), ("compact", "report.compact"), ("junit", "report.junit")):
        assert render_stored(report, [], fmt) == (STORED / name).read_text(encoding="utf-8"), fmt
    assert json.loads(render_stored(report, [], "json")) == _load(STORED / "report.json")
    page = render_stored(report, [], "html")
    assert "http://127.0.0.1:18931/missing" in page and "bad.md" in page


def test_the_record_reads_statuses_and_politeness_as_attributes() -> None:
    """Totals answer each status by name, and the per-host figures come back as HostStats records."""
    report = RunReport.from_json(_load(STORED / "report.json"))
    assert (report.totals.failing, report.totals.count("invalid"), report.totals.count("dead")) == (1, 1, 0)
    assert [(h.host, h.lowest_concurrency) for h in report.politeness] == [("127.0.0.1:18931", 8)]
    assert report.with_exit_code(6).run.exit_code == 6 and report.run.exit_code == 1


def _store_report(tmp_path: Path, document: dict[str, Any]) -> Path:
    """A history holding ``document`` as its one finished run, and a config that points at it."""
    state = tmp_path / "state"
    started = datetime.fromisoformat(document["run"]["started_at"]).astimezone(UTC)
    with HistoryStore(state / "history.sqlite3") as store:
        store.start_run(document["run"]["id"], started, document["run"]["mode"])
        store.finish_run(document["run"]["id"], started, 1, None, document["totals"], document)
    (tmp_path / "c").mkdir()
    config = tmp_path / "pipeline.yaml"
    settings = {"corpus": {"roots": [str(tmp_path / "c")]}, "state": {"dir": str(state)}}
    config.write_text(yaml.safe_dump({**settings, "reports": {"dir": str(tmp_path / "reports")}}))
    return config


def _report_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "report", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_report_validate_passes_a_valid_stored_report(tmp_path: Path) -> None:
    """`pipeline report --validate` renders a stored report that matches the schema, exit 0."""
    document = _load(STORED / "report.json")
    done = _report_cli(_store_report(tmp_path, document), "--validate", "--format", "compact")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (STORED / "report.compact").read_text(encoding="utf-8")


def test_report_validate_refuses_a_stored_report_that_breaks_the_schema(tmp_path: Path) -> None:
    """`pipeline report --validate` exits 1 naming the key that breaks the schema, and prints no report."""
    document = _load(STORED / "report.json")
    document["totals"]["dead"] = -1
    config = _store_report(tmp_path, document)
    done = _report_cli(config, "--validate")
    assert done.returncode == 1 and done.stdout == ""
    assert "totals.dead" in done.stderr and "Traceback" not in done.stderr
    assert _report_cli(config).returncode == 0  # without --validate it still renders, as before
