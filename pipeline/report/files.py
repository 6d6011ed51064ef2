"""Report files: atomic writes of report.json/.md/.html into a run folder, the ``latest`` link and pruning.

Reads: a run's ``RunReport`` and the trend rows. Writes: ``reports/<run id>/``.
Settings: ``reports.dir``, ``reports.keep_runs`` (passed in).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.report.build import json_default
from pipeline.report.render import html_chunks, render_markdown
from pipeline.report.view import Summariser, Summary, summarise
from pipeline.runreport import ChangeRow, LinkRow, RunInfo, RunReport
from pipeline.text import json_text

LATEST = "latest"


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _write_atomic(path: Path, text: str | Iterable[bytes]) -> None:
    """``text`` (or its UTF-8 bytes, a piece at a time) as the file at ``path``, replaced atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in _encoded([text]) if isinstance(text, str) else text:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(document: Any, indent: int | None = 2) -> str:
    """``document`` as JSON text with no raw control character (report.json, ``pipeline report``)."""
    return json_text(json.dumps(document, indent=indent, ensure_ascii=False, default=json_default))


_ROWS = ("links", "changes", "discovered")  # the parts of a report that grow with the corpus


def json_chunks(
    report: RunReport,
    on_link: Callable[[LinkRow], None] | None = None,
    lines: dict[str, str] | None = None,
) -> Iterator[str]:
    """report.json's text a row at a time, never held whole: the document indented as ``dump_json``
    writes it, but each link and change row on one line (greppable, and written by json's C encoder:
    indented rows cost ten times as much on a night that changes nothing). ``on_link`` sees each link
    row as it is written (the summary of report.md/html, made in the same pass); ``lines``: link rows'
    lines encoded already, by URL (``report.early``), taken as they are written."""
    shell = replace(report, links=(), changes=(), discovered=()).to_json()
    keys = list(shell)
    yield "{"
    for number, key in enumerate(keys):
        end = "," if number + 1 < len(keys) else ""
        rows = getattr(report, key) if key in _ROWS else ()
        if rows:
            yield f'\n  "{key}": ['
            if key == "links":
                yield from _row_lines(rows, on_link, lines or {})
            else:
                yield from _row_lines(rows, None, {})
            yield "\n  ]" + end
        else:
            yield f'\n  "{key}": {_nested(shell[key], 1)}{end}'
    yield "\n}\n"


_ROWS_PER_CHUNK = 256  # rows encoded, escaped and handed on together: one call each, not one per row


def _row_lines(
    rows: Iterable[Any], on_row: Callable[[Any], None] | None, encoded: dict[str, str]
) -> Iterator[str]:
    lines: list[str] = []
    for count, row in enumerate(rows):
        if on_row is not None:
            on_row(row)
        line = encoded.pop(row.url, None) if encoded else None
        lines.append(("," if count else "") + "\n    " + (line or encode_row(row)))
        if len(lines) == _ROWS_PER_CHUNK:
            yield json_text("".join(lines))
            lines.clear()
    if lines:
        yield json_text("".join(lines))


def _nested(value: Any, depth: int) -> str:
    """``value`` as ``dump_json`` writes it ``depth`` levels deep (JSON text never holds a raw newline)."""
    return dump_json(value).replace("\n", "\n" + "  " * depth)


# One encoder for every row: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=json_default)


def encode_row(row: LinkRow | ChangeRow) -> str:
    """A link or change row as its one line of report.json."""
    return _ENCODER.encode(row.to_json())


def _encoded(chunks: Iterable[str]) -> Iterator[bytes]:
    # "replace": a stray surrogate from the web must cost one character, never the whole report.
    for chunk in chunks:
        yield chunk.encode("utf-8", errors="replace")


def stored_copy(
    report: RunReport,
    on_link: Callable[[LinkRow], None] | None = None,
    lines: dict[str, str] | None = None,
) -> bytes:
    """report.json compressed, as the history keeps it (``HistoryStore.finish_run``), made a row at a time
    (``on_link``, ``lines``: see ``json_chunks``)."""
    packer = zlib.compressobj(6)
    pieces = [packer.compress(chunk) for chunk in _encoded(json_chunks(report, on_link, lines))]
    pieces.append(packer.flush())
    return b"".join(pieces)


def stored_copy_and_summary(report: RunReport, lines: dict[str, str] | None = None) -> tuple[bytes, Summary]:
    """The history's copy (``stored_copy``) and what report.md/html show (``view.summarise``), made in
    one pass over the link rows (``lines``: see ``json_chunks``)."""
    summariser = Summariser(report.politeness)
    stored = stored_copy(report, summariser.add, lines)
    return stored, summariser.summary()


def _unpacked(blob: bytes) -> Iterator[bytes]:
    unpacker = zlib.decompressobj()
    for begin in range(0, len(blob), 1 << 16):
        yield unpacker.decompress(blob[begin : begin + (1 << 16)])
    yield unpacker.flush()


def _point_latest(reports_dir: Path, run_dir: Path) -> None:
    """Make ``latest`` name the run folder: an atomic symlink swap, or a copied folder without symlinks."""
    latest = reports_dir / LATEST
    tmp = reports_dir / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run_dir.name, tmp, target_is_directory=True)
    except OSError:
        if tmp.is_symlink() or tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run_dir, tmp)
    if latest.is_dir() and not latest.is_symlink():
        # A copied folder from a filesystem without symlinks (or an old layout): replace takes files only.
        old = reports_dir / f".{LATEST}.{os.getpid()}.old"
        latest.rename(old)
        os.replace(tmp, latest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, latest)


def _prune(reports_dir: Path, keep_runs: int, current: Path) -> None:
    """Remove the oldest run folders beyond ``keep_runs`` (run ids sort by start time).

    Only folders that hold a report.json are considered, so nothing else in the folder is ever removed.
    """
    runs = sorted(
        child
        for child in reports_dir.iterdir()
        if child.name != LATEST
        and not child.is_symlink()
        and child.is_dir()
        and _RUN_ID.match(child.name)
        and (child / "report.json").is_file()
    )
    latest = reports_dir / LATEST
    kept = latest.resolve() if latest.is_symlink() else None  # `latest` may name an older complete run
    for old in runs[: max(len(runs) - keep_runs, 0)]:
        if old != current and old.resolve() != kept:
            shutil.rmtree(old, ignore_errors=True)


def latest_is_complete(reports_dir: Path) -> bool:
    """Whether ``reports/latest`` holds the report of a complete run (not a partial or interrupted one)."""
    try:
        return RunInfo.from_json(_run_part(reports_dir / LATEST / "report.json")).kind == "complete"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _run_part(path: Path) -> Any:
    """The ``run`` object of a report.json, read from the file's start (it comes second in every version's
    report), so a report of a million links is not read whole for it; the whole file when not found there."""
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    found = re.search(r'^  "run": ', head, re.MULTILINE)
    if found is not None:
        with contextlib.suppress(ValueError):
            return json.JSONDecoder().raw_decode(head, found.end())[0]
    return json.loads(path.read_text(encoding="utf-8"))["run"]


def write_reports(
    report: RunReport,
    reports_dir: Path,
    trend: list[dict[str, Any]],
    keep_runs: int,
    *,
    point_latest: bool = True,
    stored: bytes | None = None,
    summary: Summary | None = None,
) -> Path:
    """Write ``<reports_dir>/<run id>/report.{json,md,html}`` atomically, point ``latest`` at it, prune.

    With ``point_latest=False`` (a partial or interrupted run after a complete one) ``latest`` stays.
    ``stored``: the history's compressed copy (``stored_copy``), unpacked into report.json instead of
    writing the JSON a second time; ``summary``: the report's ``view.summarise``, when the caller has it
    (``stored_copy_and_summary``).

    report.json is written a row at a time; the Markdown and HTML read the same rows (values as the JSON
    gives them back, so a later ``pipeline report`` re-render shows the same thing) and summarise a large
    report (``report/view.py`` states the caps). Returns the run folder.
    """
    run_id = str(report.run.id)
    if not _RUN_ID.match(run_id) or run_id == LATEST:
        raise ValueError(f"run.id: {run_id!r} cannot name a report folder (letters, digits, '.', '_', '-')")
    if keep_runs < 1:
        raise ValueError(f"reports.keep_runs: must be at least 1, got {keep_runs}")
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        run_dir / "report.json", _encoded(json_chunks(report)) if stored is None else _unpacked(stored)
    )
    summary = summary if summary is not None else summarise(report)
    _write_atomic(run_dir / "report.md", render_markdown(report, summary=summary))
    _write_atomic(run_dir / "report.html", _encoded(html_chunks(report, trend, summary)))
    if point_latest:
        _point_latest(reports_dir, run_dir)
    _prune(reports_dir, keep_runs, run_dir)
    return run_dir
