"""A run's result in the formats CI and link-checker users expect: compact, json, markdown, junit, sarif.

Reads: the run's ``RunReport`` (``pipeline/report/schema.json``) and the statuses that fail the
job (``--fail-on``; ``dead`` when none is given). Returns text (``render``); ``CiOutput`` prints it or
replaces ``--output FILE`` with it, and turns ``--fail-on`` matches into exit code 8.

- ``compact``: one line per link that needs a look (dead, failing, blocked, invalid), then the totals.
- ``json``: the report.json document itself.
- ``markdown``: report.md.
- ``junit``: one ``<testcase>`` per link (``classname`` = ``links.`` and its host), failed when its status
  is one that fails the job, ``<skipped/>`` when it was not checked; the failure names every article, field
  and line, and the archive copy. Valid against the Ant JUnit XSD that GitLab and Jenkins read.
- ``sarif``: SARIF 2.1.0, one result per failing link per article, located at the article path and the
  front-matter line of the field, so a GitHub code-scanning upload annotates the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline import __version__
from pipeline.models import STATUSES, ExitCode
from pipeline.runreport import LinkRow, RunReport
from pipeline.text import printable

log = logging.getLogger("pipeline")

FORMATS = ("compact", "json", "markdown", "junit", "sarif")
FAIL_ON_CHOICES = ("dead", "failing", "blocked")
_DEFAULT_FAILING = frozenset({"dead"})
_SHOWN = ("dead", "failing", "blocked", "invalid")
_NOT_CHECKED = ("skipped", "invalid")
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_TOOL_URI = "https://pypi.org/project/link-pipeline/"
_SRCROOT = "%SRCROOT%"
_RULES = {
    "dead": ("dead-link", "error", "A link that failed on enough runs over enough days to be called dead."),
    "failing": ("failing-link", "warning", "A link that fails now, not yet long enough to be called dead."),
    "blocked": ("blocked-link", "note", "A site that refused the checker (401/403/429/999): health unknown."),
}


def render(report: RunReport, fmt: str, fail_on: Iterable[str] = ()) -> str:
    """The report in ``fmt`` (one of FORMATS); ``fail_on`` picks the statuses that count as failures."""
    return "".join(chunks(report, fmt, fail_on))


def chunks(report: RunReport, fmt: str, fail_on: Iterable[str] = ()) -> Iterable[str]:
    """``render``'s text in pieces: the JSON a row at a time, so a large report is never held whole."""
    failing = frozenset(fail_on) or _DEFAULT_FAILING
    if fmt == "compact":
        return [_compact(report)]
    from pipeline.report.files import json_chunks

    if fmt == "json":
        return json_chunks(report)
    return [_whole(report, fmt, failing)]


def _whole(report: RunReport, fmt: str, failing: frozenset[str]) -> str:
    from pipeline.report.files import dump_json

    if fmt == "markdown":
        from pipeline.report.render import render_markdown

        return render_markdown(report)
    if fmt == "junit":
        return _junit(report, failing)
    if fmt == "sarif":
        return dump_json(_sarif(report, failing)) + "\n"
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def matched(report: RunReport, fail_on: Iterable[str]) -> dict[str, int]:
    """How many links have each ``--fail-on`` status (only the statuses with any)."""
    totals = report.totals
    return {status: totals.count(status) for status in fail_on if totals.count(status)}


def _places(link: LinkRow) -> list[str]:
    out = []
    for entry in link.articles:
        for field_path, line in zip(entry.field_paths, entry.lines, strict=False):
            where = f"{entry.article}:{line}" if line else entry.article
            out.append(f"{where} {field_path}")
    return out


def _why(link: LinkRow) -> str:
    return link.reason or (f"HTTP {link.http_status}" if link.http_status else link.status)


def _compact(report: RunReport) -> str:
    shown: dict[str, list[str]] = {status: [] for status in _SHOWN}
    for link in report.links:  # one pass: the rows come from a spool
        status = link.status
        if status not in shown:
            continue
        line = f"[{status.upper()}] {link.url} ({_why(link)}) in {', '.join(_places(link)) or '?'}"
        if link.archive:
            line += f"; archived copy: {link.archive.url}"
        shown[status].append(printable(line))
    lines = [line for status in _SHOWN for line in shown[status]]
    totals = report.totals
    counts = ", ".join(f"{totals.count(k)} {k}" for k in STATUSES if totals.count(k))
    run = report.run
    outage = f"; OUTAGE: {run.outage}" if run.outage else ""
    lines.append(
        printable(
            f"{totals.urls} URLs in {totals.articles} articles: {counts or 'none'}; "
            f"{totals.files_failed} file errors{outage}"
        )
    )
    return "\n".join(lines) + "\n"


class CiOutput:
    """What the CI-facing flags of `refresh` ask for: a result format and file, --fail-on, filters."""

    def __init__(
        self,
        fmt: str | None = None,
        path: Path | None = None,
        fail_on: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        include: tuple[str, ...] = (),
    ) -> None:
        self.fmt, self.path, self.fail_on = fmt, path, fail_on
        self.exclude, self.include = exclude, include

    @property
    def to_stdout(self) -> bool:
        """The result goes to standard output (so a dry run's plan and diffs go to standard error)."""
        return self.fmt is not None and self.path is None

    def emit(self, report: RunReport) -> None:
        """Print or write the result; a file is replaced whole (never left half-written)."""
        if self.fmt is None:
            return
        pieces = chunks(report, self.fmt, self.fail_on)
        if self.path is None:
            sys.stdout.writelines(pieces)
            sys.stdout.flush()
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        with partial.open("w", encoding="utf-8") as fh:
            fh.writelines(pieces)
        os.replace(partial, self.path)

    def exit_code(self, report: RunReport, code: int) -> int:
        """``--fail-on``: 8 when matching links exist and the run itself ended 0; else ``code``."""
        hits = matched(report, self.fail_on) if self.fail_on else {}
        if hits and code == ExitCode.OK:
            log.warning("--fail-on: %s", ", ".join(f"{n} {status}" for status, n in hits.items()))
            return int(ExitCode.FAIL_ON)
        return code


# ------------------------------------------------------------------------------------------------ junit


def _xml(text: Any) -> str:
    return _XML_ILLEGAL.sub("\N{REPLACEMENT CHARACTER}", str(text))


def _token(text: Any) -> str:
    """xs:token: no line breaks or tabs, no leading, trailing or doubled spaces."""
    return " ".join(_xml(text).split()) or "-"


def _junit_time(value: str) -> str:
    moment = datetime.fromisoformat(value)
    return f"{moment.replace(tzinfo=None):%Y-%m-%dT%H:%M:%S}"  # the XSD's pattern: no time zone


def _junit(report: RunReport, failing: frozenset[str]) -> str:
    run, links = report.run, report.links
    root = ET.Element("testsuites")
    failures = sum(1 for link in links if link.status in failing)
    skipped = sum(1 for link in links if link.status in _NOT_CHECKED)
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "package": "link-pipeline",
            "id": "0",
            "name": "link-health",
            "timestamp": _junit_time(run.started_at),
            "hostname": "localhost",
            "tests": str(len(links)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{float(run.duration_seconds):.3f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", run.id),
        ("mode", run.mode),
        ("outage", run.outage or ""),
        ("fail_on", ",".join(sorted(failing))),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for link in links:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": _token(link.url),
                # Jenkins splits classname at its last dot into package and class: one dot only.
                "classname": _token(f"links.{(link.host or 'invalid').replace('.', '_')}"),
                "time": "0",
            },
        )
        status = link.status
        if status in failing:
            body = [f"{status}: {_why(link)}", *(f"  {place}" for place in _places(link))]
            if link.archive:
                body.append(f"archived copy: {link.archive.url}")
            failure = ET.SubElement(
                case, "failure", {"message": _xml(f"{status}: {_why(link)}"), "type": status}
            )
            failure.text = _xml("\n".join(body))
        elif status in _NOT_CHECKED:
            ET.SubElement(case, "skipped", {"message": _xml(_why(link))})
    ET.SubElement(suite, "system-out").text = _xml(_compact(report))
    ET.SubElement(suite, "system-err")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ------------------------------------------------------------------------------------------------ sarif


def _artifact_location(article: str, root: Path) -> dict[str, str]:
    """Relative to %SRCROOT% (the working directory) when inside it, what code scanning matches to the
    repository's files; else a file:// URI (a relative URI must not climb out of its base with ``..``)."""
    path = Path(os.path.normpath(root / article))
    try:
        relative = path.relative_to(root)
    except ValueError:
        return {"uri": path.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": _SRCROOT}


def _folder_uri(folder: Path) -> str:
    """A base URI must end with a slash (SARIF 3.14.14)."""
    uri = folder.as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _sarif(report: RunReport, failing: frozenset[str]) -> dict[str, Any]:
    statuses = [s for s in FAIL_ON_CHOICES if s in failing]
    rules = [
        {
            "id": _RULES[s][0],
            "name": _RULES[s][0].title().replace("-", ""),
            "shortDescription": {"text": f"{s.capitalize()} link"},
            "fullDescription": {"text": _RULES[s][2]},
            "defaultConfiguration": {"level": _RULES[s][1]},
        }
        for s in statuses
    ]
    root = Path.cwd()
    results = []
    for link in report.links:
        status = link.status
        if status not in failing:
            continue
        rule_id, level, _ = _RULES[status]
        for entry in link.articles:
            fields = list(entry.field_paths)
            lines = [line for line in entry.lines if line]
            text = f"{status.capitalize()} link {link.url} ({_why(link)}) in {', '.join(fields)}."
            if link.archive:
                text += f" Archived copy: {link.archive.url}"
            location: dict[str, Any] = {
                "artifactLocation": _artifact_location(entry.article, root),
                # GitHub needs a line to annotate; without one, the front-matter's opening `---`.
                "region": {"startLine": lines[0] if lines else 1},
            }
            fingerprint = hashlib.sha256(f"{status}\n{link.url}\n{entry.article}".encode()).hexdigest()
            result: dict[str, Any] = {
                "ruleId": rule_id,
                "ruleIndex": statuses.index(status),
                "level": level,
                "message": {"text": text},
                "locations": [{"physicalLocation": location}],
                "partialFingerprints": {"linkPipeline/v1": fingerprint},
                "properties": {
                    "url": link.url,
                    "status": status,
                    "httpStatus": link.http_status,
                    "fieldPaths": fields,
                    "archiveUrl": link.archive.url if link.archive else None,
                },
            }
            results.append(result)
    run = report.run
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "link-pipeline",
                        "version": __version__,
                        "informationUri": _TOOL_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {_SRCROOT: {"uri": _folder_uri(root)}},
                "automationDetails": {"id": f"link-pipeline/{run.id}"},
                "invocations": [
                    {
                        "executionSuccessful": run.exit_code in (0, 1),
                        "startTimeUtc": run.started_at,
                        "endTimeUtc": run.finished_at,
                    }
                ],
                "results": results,
            }
        ],
    }
