"""A run's report as Markdown and as self-contained HTML (Jinja templates in ``templates/``).

Reads: the run's ``RunReport`` (meaning of each field: ``pipeline/report/schema.json``) and the run
history for the HTML trend chart (``HistoryStore.list_runs()``, newest first), through :mod:`.view`.
Returns: rendered text. Settings: none (``report.files`` writes the files).

Nothing from the web reaches a report unescaped: HTML goes through Jinja autoescape, links are only made for
http(s) URLs, the page's one script is a fixed file allowed by its hash in a Content-Security-Policy (no data
is ever put in a script), and Markdown escapes every character that could make a link, image, mention, HTML
or a table cell out of a page title or a reason.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from pipeline.report.schema import _HERE
from pipeline.report.view import (
    _MAX_ARTICLES_SHOWN,
    Summary,
    _day,
    _duration,
    _href,
    _value,
    _view,
    _when,
    total,
)
from pipeline.runreport import LinkRow, RunReport
from pipeline.text import printable

if TYPE_CHECKING:  # imported by _environments: a refresh loads Jinja while its checks run (``prepare``)
    import jinja2

# --------------------------------------------------------------------------------------------- schema


# ------------------------------------------------------------------------------------ pure view model


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


def _md_articles(link: LinkRow) -> _Md:
    parts = []
    articles = link.articles
    for entry in articles[:_MAX_ARTICLES_SHOWN]:
        fields = ", ".join(_md_code(f) for f in entry.field_paths)
        parts.append(_md_code(entry.article) + (f" ({fields})" if fields else ""))
    if len(articles) > _MAX_ARTICLES_SHOWN:
        parts.append(f"and {len(articles) - _MAX_ARTICLES_SHOWN} more")
    return _Md("<br>".join(parts) if parts else "—")


# -------------------------------------------------------------------------------------------- render


def _html_finalize(value: Any) -> Any:
    """Every printed value is made printable before autoescape; our own Markup (css, script) is kept."""
    return value if isinstance(value, Markup) or not isinstance(value, str) else printable(value)


def _compiled_cache(environment: str) -> jinja2.BytecodeCache | None:
    """Jinja's cache of templates compiled by one ``environment``, in the user's private temporary folder;
    None without one.

    Compiling both templates cost about 0.2 s of CPU in every run (the run's own process, beside its
    checks). The compiled code depends on the template's text (Jinja checks it) and on the environment's
    options, set in this file: each entry's name holds the environment's name and this file's digest, so
    another environment or version never reads it. The cache is never a reason for a report not to be
    written: an entry that cannot be read or stored is compiled again.
    """
    import jinja2

    class Compiled(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # a damaged entry (marshal's errors vary): compiled again
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(OSError):  # a full or read-only temporary folder
                super().dump_bytecode(bucket)

    options = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    try:
        return Compiled(pattern=f"pipeline-report-{environment}-{options}-%s.cache")
    except (OSError, RuntimeError):  # no private temporary folder (Jinja refuses an unsafe one)
        return None


@cache
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    import jinja2

    loader = jinja2.FileSystemLoader(_HERE / "templates")
    # The templates are part of the installed package: compiled once per process (see prepare), not looked
    # at again before each render (a daemon picks up an upgraded package when it restarts, like its code).
    html = jinja2.Environment(
        loader=loader,
        bytecode_cache=_compiled_cache("html"),
        auto_reload=False,
        autoescape=True,
        finalize=_html_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    md = jinja2.Environment(
        loader=loader,
        bytecode_cache=_compiled_cache("md"),
        auto_reload=False,
        autoescape=False,
        finalize=_md_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    common = {"when": _when, "day": _day, "duration": _duration, "value": _value, "total": total}
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


@cache
def _script_hash() -> str:
    digest = hashlib.sha256(_asset("report.js").encode("utf-8")).digest()
    return f"sha256-{base64.b64encode(digest).decode('ascii')}"


def prepare() -> None:
    """Load Jinja and compile both templates now (they are kept for the process).

    A run calls this while its checks are under way, when the process mostly waits on the network, so
    that writing the reports after the last answer does not pay for it.
    """
    html, md = _environments()
    html.get_template("report.html.j2")
    md.get_template("report.md.j2")
    _script_hash()
    _asset("report.css")


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


def render_markdown(
    report: RunReport, *, max_rows: int = 100, limit: int = MARKDOWN_LIMIT, summary: Summary | None = None
) -> str:
    """Markdown for a pull request or an issue: totals, then each non-empty section, most important first.

    A section shows at most ``max_rows`` rows; when the whole would pass ``limit`` characters, rows are
    left out from the least important sections first (newly dead, recovered and file errors go last).
    Every cut says how many rows are left out and that report.html and report.json have them all.
    ``summary``: the report's ``view.summarise`` when the caller has it (one pass over the rows for both).
    """
    _, md = _environments()
    view = _view(report, None, summary)
    sections = view["sections"]
    rows = {
        key: total(view[key])
        if key in ("errors", "changes", "discovered", "refused_pages")
        else total(getattr(sections, key))
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


def render_html(report: RunReport, trend: list[dict[str, Any]]) -> str:
    """One self-contained page: the Markdown's sections as sortable, filterable tables, hosts, trend chart."""
    return "".join(html_chunks(report, trend))


def html_chunks(
    report: RunReport, trend: list[dict[str, Any]], summary: Summary | None = None
) -> Iterator[str]:
    """``render_html``'s page a piece at a time (report files are written as they are rendered)."""
    html, _ = _environments()
    return html.get_template("report.html.j2").generate(
        **_view(report, trend, summary),
        css=Markup(_asset("report.css")),  # fixed files of ours, never data
        script=Markup(_asset("report.js")),
        script_hash=_script_hash(),
    )


# --------------------------------------------------------------------------------------------- write
