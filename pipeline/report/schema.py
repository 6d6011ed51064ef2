"""The JSON Schema of report.json (``schema.json``, shipped in this package) and validation against it.

Reads: a report.json document (``RunReport.to_json()``, or the history's stored copy). Returns: nothing,
or raises :class:`ReportInvalid` naming the offending paths. Settings: none. Used by
``pipeline report --validate`` (and by the tests on every report they produce).
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import ReportInvalid

_HERE = Path(__file__).resolve().parent  # the schema and templates ship inside the package


@cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (shipped as ``pipeline/report/schema.json``)."""
    text = (_HERE / "schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _error_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``ReportInvalid`` unless ``report`` matches the schema (formats such as date-time included)."""
    # Imported here: jsonschema is needed only where a report is validated (`pipeline report --validate`).
    cls = importlib.import_module("jsonschema").Draft202012Validator
    validator = cls(load_schema(), format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(report), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        shown = "; ".join(f"{_error_path(e.absolute_path)}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ReportInvalid(f"report.json: {shown}{more}")
