"""A run's report: validate it, render it as Markdown and HTML, and write the run's report folder.

Reads: the report dict the runner builds (shape and meaning: ``pipeline/report/schema.json``), the run
history for the HTML trend chart (``HistoryStore.list_runs()``, newest first), and ``reports.dir`` /
``reports.keep_runs``. Returns: rendered text, or the run folder holding report.json, report.md and
report.html; ``latest`` points at the newest run.

Nothing from the web reaches a report unescaped: HTML goes through Jinja autoescape, links are only made for
http(s) URLs, the page's one script is a fixed file allowed by its hash in a Content-Security-Policy (no data
is ever put in a script), and Markdown escapes every character that could make a link, image, mention, HTML
or a table cell out of a page title or a reason.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from pipeline.text import json_text, printable

SCHEMA_VERSION = 1
_HERE = Path(__file__).resolve().parent  # the schema and templates ship inside the package
LATEST = "latest"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STATUSES = ("ok", "redirected", "failing", "dead", "blocked", "invalid", "skipped")
_EXIT_LABELS = {
    0: "ok",
    1: "some files failed",
    3: "configuration error",
    4: "locked",
    5: "interrupted",
    6: "a state or reports path cannot be used",
    7: "network down for several runs",
}
_MAX_ARTICLES_SHOWN = 5
_MAX_TREND_RUNS = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# A run that did not check the whole corpus: shown as such, never made `latest` over a complete run.
_KIND_NOTES = {
    "partial": "partial: only some paths or --include URLs were checked",
    "interrupted": "interrupted: stopped before the end",
}


def run_kind(run: dict[str, Any]) -> str:
    """``complete``, ``partial`` or ``interrupted`` (runs recorded before kinds existed are complete)."""
    kind = run.get("kind")
    return kind if kind in _KIND_NOTES else "complete"


class ReportInvalid(ValueError):
    """The report dict does not match report/schema.json; the message names the offending paths."""


# --------------------------------------------------------------------------------------------- schema


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
    # Imported here: jsonschema is needed only where reports are validated (tests, the runner's checks).
    cls = importlib.import_module("jsonschema").Draft202012Validator
    validator = cls(load_schema(), format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(report), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        shown = "; ".join(f"{_error_path(e.absolute_path)}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ReportInvalid(f"report.json: {shown}{more}")


# ------------------------------------------------------------------------------------ pure view model


@dataclass(frozen=True, slots=True)
class _Sections:
    newly_dead: list[dict[str, Any]]
    recovered: list[dict[str, Any]]
    still_dead: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    blocked: list[dict[str, Any]]
    redirected: list[dict[str, Any]]
    invalid: list[dict[str, Any]]


def _sections(links: list[dict[str, Any]]) -> _Sections:
    """Sort the links into the report's sections (a link may be in none, e.g. ok and ok before)."""
    by_url = sorted(links, key=lambda link: (link.get("host") or "", link["url"]))
    dead = [lnk for lnk in by_url if lnk["status"] == "dead"]
    return _Sections(
        newly_dead=[lnk for lnk in dead if lnk.get("previous_status") != "dead"],
        recovered=[
            lnk
            for lnk in by_url
            if lnk.get("previous_status") in ("dead", "failing") and lnk["status"] in ("ok", "redirected")
        ],
        still_dead=[lnk for lnk in dead if lnk.get("previous_status") == "dead"],
        failing=sorted(
            (lnk for lnk in by_url if lnk["status"] == "failing"),
            key=lambda lnk: -int(lnk.get("consecutive_failures") or 0),
        ),
        blocked=[lnk for lnk in by_url if lnk["status"] == "blocked"],
        redirected=[
            lnk
            for lnk in by_url
            if lnk["status"] == "redirected" and lnk.get("final_url") and lnk["final_url"] != lnk["url"]
        ],
        invalid=[lnk for lnk in by_url if lnk["status"] == "invalid"],
    )


def _host(link: dict[str, Any]) -> str:
    if "host" in link:
        return str(link["host"] or "")
    try:
        return urlsplit(link["url"]).hostname or ""
    except ValueError:
        return ""


_POLITENESS = ("got_429", "got_503", "pauses", "paused_seconds", "lowest_concurrency", "not_modified")


def _hosts(
    links: list[dict[str, Any]], politeness: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per-host counts of each status and the checker's politeness figures, most dead and failing first."""
    polite = {row["host"]: row for row in politeness or []}
    table: dict[str, Counter[str]] = {}
    for link in links:
        host = _host(link)
        if not host:
            continue
        counts = table.setdefault(host, Counter())
        counts[link["status"]] += 1
        counts["urls"] += 1
    order = sorted(table.items(), key=lambda hc: (-(hc[1]["dead"] + hc[1]["failing"]), -hc[1]["urls"], hc[0]))
    return [
        {
            "host": host,
            **{k: counts[k] for k in ("urls", *_STATUSES)},
            **{k: polite[host][k] for k in _POLITENESS if host in polite},
        }
        for host, counts in order
    ]


def _parse_time(value: Any) -> datetime | None:
    """A moment from report JSON (an ISO string) or from ``HistoryStore.list_runs`` (a datetime)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M UTC") if parsed else "—"


def _day(value: Any) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d") if parsed else "—"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _href(url: Any) -> str | None:
    """The URL itself when it is safe to link to (http or https), else None: no javascript: or data: links."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if (
        parts.scheme.lower() in ("http", "https")
        and parts.netloc
        and not re.search(r"[\s\x00-\x1f\x7f]", url)
        and printable(url) == url
    ):
        return url
    return None


def _value(value: Any, limit: int = 300) -> str:
    """A change's old or new value as text for people: strings as they are, anything else as JSON."""
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trend(report: dict[str, Any], trend: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the trend chart: one stacked bar per run up to this one, oldest on the left."""
    run = report["run"]
    started = _parse_time(run["started_at"])
    runs = [
        item
        for item in trend
        if item.get("id") == run["id"]
        or (started and (_parse_time(item.get("started_at")) or started) <= started)
    ]
    if not any(item.get("id") == run["id"] for item in runs):
        runs.insert(
            0,
            {
                **{k: run.get(k) for k in ("id", "started_at", "exit_code", "outage", "kind")},
                "totals": report["totals"],
            },
        )
    runs.sort(key=lambda item: _parse_time(item.get("started_at")) or _EPOCH, reverse=True)
    runs = runs[:_MAX_TREND_RUNS][::-1]
    layers = (
        ("ok", ("ok", "redirected")),
        ("blocked", ("blocked",)),
        ("failing", ("failing",)),
        ("dead", ("dead",)),
    )
    width, height, left, top, bottom = 720, 200, 44, 12, 28
    plot_w, plot_h = width - left - 8, height - top - bottom
    peak = max(
        [sum(int((r.get("totals") or {}).get(k) or 0) for _, ks in layers for k in ks) for r in runs] + [1]
    )
    peak += peak % 2  # an even top keeps the middle grid line on a whole number
    slot = plot_w / max(len(runs), 1)
    bar_w = max(min(slot * 0.7, 28), 2)
    label_every = max(1, round(len(runs) / 8))
    bars = []
    for index, item in enumerate(runs):
        totals = item.get("totals") or {}
        x = left + index * slot + (slot - bar_w) / 2
        y = float(top + plot_h)
        segments = []
        for name, keys in layers:
            count = sum(int(totals.get(k) or 0) for k in keys)
            h = plot_h * count / peak
            y -= h
            if count:
                segments.append({"layer": name, "y": round(y, 1), "h": round(h, 1), "count": count})
        tip = ", ".join(f"{n} {sum(int(totals.get(k) or 0) for k in ks)}" for n, ks in layers)
        bars.append(
            {
                "x": round(x, 1),
                "w": round(bar_w, 1),
                "segments": segments,
                "current": item.get("id") == run["id"],
                "outage": bool(item.get("outage")),
                "incomplete": run_kind(item) != "complete",
                "title": f"{item.get('id')} — {_when(item.get('started_at'))}: {tip}"
                + (" (outage: nothing recorded)" if item.get("outage") else "")
                + (f" ({_KIND_NOTES[run_kind(item)]})" if run_kind(item) != "complete" else ""),
                "label": _day(item.get("started_at"))[5:]
                if (len(runs) - 1 - index) % label_every == 0
                else "",
                "cx": round(x + bar_w / 2, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "base": top + plot_h,
        "peak": peak,
        "mid_y": round(top + plot_h / 2, 1),
        "right": width - 8,
        "bars": bars,
        "runs": len(runs),
    }


def _view(report: dict[str, Any], trend: list[dict[str, Any]] | None) -> dict[str, Any]:
    links = report.get("links", [])
    run = report["run"]
    return {
        "report": report,
        "run": run,
        "totals": report["totals"],
        "sections": _sections(links),
        "links": sorted(links, key=lambda lnk: (_STATUSES.index(lnk["status"]), lnk["url"])),
        "changes": report.get("changes", []),
        "errors": report.get("errors", []),
        "discovered": report.get("discovered", []),
        "refused_pages": report.get("refused_pages", []),
        "hosts": _hosts(links, report.get("politeness")),
        "trend": _trend(report, trend) if trend is not None else None,
        "exit_label": _EXIT_LABELS.get(run["exit_code"], "unknown"),
        "kind_note": _KIND_NOTES.get(run_kind(run), ""),
        "statuses": _STATUSES,
        "max_articles": _MAX_ARTICLES_SHOWN,
    }


# ------------------------------------------------------------------------------------------- Markdown


class _Md(str):
    """Markdown that is already safe; everything else printed by the template is escaped."""

    __slots__ = ()


# Every ASCII character that can start markup in GitHub Markdown mid-line: links, images, emphasis, code,
# HTML and entities, table cells, strikethrough, @mentions, #references and $math$.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()<>#!|~@&$])")


def _md_text(value: Any, limit: int = 300) -> _Md:
    text = " ".join(printable(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _Md(_MD_SPECIAL.sub(r"\\\1", text))


def _md_code(value: Any, limit: int = 300) -> _Md:
    """A code span: nothing inside is markup. Sized fences for backticks; pipes escaped for tables."""
    text = " ".join(printable(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    body = text.replace("|", "\\|")
    return _Md(f"{fence}{pad}{body}{pad}{fence}")


def _md_url(value: Any) -> _Md:
    """A clickable autolink for a plain http(s) URL, else a code span (never a link to anything else)."""
    url = str(value)
    if _href(url) and len(url) <= 2000 and not re.search(r"[<>\\`]", url) and printable(url) == url:
        return _Md("<" + url.replace("|", "%7C") + ">")
    return _md_code(url)


def _md_finalize(value: Any) -> Any:
    if isinstance(value, _Md):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    return _md_text(value)


def _md_articles(link: dict[str, Any]) -> _Md:
    parts = []
    articles = link.get("articles") or []
    for entry in articles[:_MAX_ARTICLES_SHOWN]:
        fields = ", ".join(_md_code(f) for f in entry.get("field_paths", []))
        parts.append(_md_code(entry["article"]) + (f" ({fields})" if fields else ""))
    if len(articles) > _MAX_ARTICLES_SHOWN:
        parts.append(f"and {len(articles) - _MAX_ARTICLES_SHOWN} more")
    return _Md("<br>".join(parts) if parts else "—")


# -------------------------------------------------------------------------------------------- render


def _html_finalize(value: Any) -> Any:
    """Every printed value is made printable before autoescape; our own Markup (css, script) is kept."""
    return value if isinstance(value, Markup) or not isinstance(value, str) else printable(value)


@cache
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.FileSystemLoader(_HERE / "templates")
    html = jinja2.Environment(
        loader=loader,
        autoescape=True,
        finalize=_html_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    md = jinja2.Environment(
        loader=loader,
        autoescape=False,
        finalize=_md_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    common = {"when": _when, "day": _day, "duration": _duration, "value": _value}
    html.filters.update(common, href=_href)
    # `raw` is for the template's own macros, whose output is already escaped Markdown.
    md.filters.update(common, raw=_Md, md=_md_text, code=_md_code, url=_md_url, articles=_md_articles)
    md.filters["value"] = lambda v: (
        _Md("*(none)*") if v is None else _Md("*(empty)*") if v == "" else _md_code(_value(v, 200), 200)
    )
    return html, md


@cache
def _asset(name: str) -> str:
    return (_HERE / "templates" / name).read_text(encoding="utf-8")


MARKDOWN_LIMIT = 60_000  # characters; GitHub refuses a comment or an issue body over 65,536
_DETAILS_AFTER = 10  # a section with more rows than this is folded in <details>
# Most important first: when the report must shrink, rows go from the end of this list first.
_MD_SECTIONS = (
    "newly_dead",
    "recovered",
    "errors",
    "failing",
    "changes",
    "redirected",
    "still_dead",
    "blocked",
    "invalid",
    "discovered",
    "refused_pages",
)


def render_markdown(report: dict[str, Any], *, max_rows: int = 100, limit: int = MARKDOWN_LIMIT) -> str:
    """Markdown for a pull request or an issue: totals, then each non-empty section, most important first.

    A section shows at most ``max_rows`` rows; when the whole would pass ``limit`` characters, rows are
    left out from the least important sections first (newly dead, recovered and file errors go last).
    Every cut says how many rows are left out and that report.html and report.json have them all.
    """
    _, md = _environments()
    view = _view(report, None)
    sections = view["sections"]
    rows = {
        key: len(view[key])
        if key in ("errors", "changes", "discovered", "refused_pages")
        else len(getattr(sections, key))
        for key in _MD_SECTIONS
    }
    template = md.get_template("report.md.j2")

    def render(limits: dict[str, int]) -> str:
        left_out = sum(rows[key] - limits[key] for key in _MD_SECTIONS)
        text = template.render(**view, limits=limits, left_out=left_out, details_after=_DETAILS_AFTER)
        # Data never holds a newline here (every value is flattened): this only tidies the template's blocks.
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

    def largest(fits: Callable[[int], bool], high: int) -> int:
        low = 0  # the largest n in [0, high] with fits(n), by bisection (fits is monotonic)
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        return low

    def capped(cap: int) -> dict[str, int]:
        return {key: min(count, cap, max_rows) for key, count in rows.items()}

    limits = capped(max_rows)
    text = render(limits)
    if len(text) > limit:
        # The same number of rows from every section, then what room is left to the most important ones.
        limits = capped(largest(lambda cap: len(render(capped(cap))) <= limit, max_rows))
        for key in _MD_SECTIONS:
            top = min(rows[key], max_rows)
            limits[key] = largest(lambda n, key=key: len(render({**limits, key: n})) <= limit, top)  # type: ignore[misc]
        text = render(limits)
    return text


def render_html(report: dict[str, Any], trend: list[dict[str, Any]]) -> str:
    """One self-contained page: the Markdown's sections as sortable, filterable tables, hosts, trend chart."""
    html, _ = _environments()
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return html.get_template("report.html.j2").render(
        **_view(report, trend),
        css=Markup(_asset("report.css")),  # fixed files of ours, never data
        script=Markup(script),
        script_hash=f"sha256-{digest}",
    )


# --------------------------------------------------------------------------------------------- write


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # "replace": a stray surrogate from the web must cost one character, never the whole report.
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(document: Any, indent: int | None = 2) -> str:
    """``document`` as JSON text with no raw control character (report.json, ``pipeline report``)."""
    return json_text(json.dumps(document, indent=indent, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"report.json: cannot write a {type(value).__name__}: {value!r}")


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
        document = json.loads((reports_dir / LATEST / "report.json").read_text(encoding="utf-8"))
        return run_kind(document["run"]) == "complete"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_reports(
    report: dict[str, Any],
    reports_dir: Path,
    trend: list[dict[str, Any]],
    keep_runs: int,
    *,
    point_latest: bool = True,
) -> Path:
    """Write ``<reports_dir>/<run id>/report.{json,md,html}`` atomically, point ``latest`` at it, prune.

    With ``point_latest=False`` (a partial or interrupted run after a complete one) ``latest`` stays.

    The Markdown and HTML are rendered from the JSON as written, so a later ``pipeline report`` re-render
    from history shows exactly the same thing. Returns the run folder.
    """
    run_id = str(report["run"]["id"])
    if not _RUN_ID.match(run_id) or run_id == LATEST:
        raise ValueError(f"run.id: {run_id!r} cannot name a report folder (letters, digits, '.', '_', '-')")
    if keep_runs < 1:
        raise ValueError(f"reports.keep_runs: must be at least 1, got {keep_runs}")
    text = dump_json(report) + "\n"
    data = json.loads(text)
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / "report.json", text)
    _write_atomic(run_dir / "report.md", render_markdown(data))
    _write_atomic(run_dir / "report.html", render_html(data, trend))
    if point_latest:
        _point_latest(reports_dir, run_dir)
    _prune(reports_dir, keep_runs, run_dir)
    return run_dir
