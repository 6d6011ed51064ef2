"""Soft-404 verdicts: a page that answers 200 but is not there any more.

Reads: one ``Observation`` (with the head of its page when the checker fetched one) and, per host, the
``Fingerprint`` of the answer to a random URL that cannot exist (the probe; Bar-Yossef et al., 2004).
Returns the observation unchanged, or turned into a hard failure (``Outcome.HARD``, reason starting with
"soft 404") so that it counts across runs like a 404. Uses no settings; pure.

Three signs, each on its own enough, and nothing else (zero false soft 404s on healthy pages is the bar;
when in doubt the page is ``ok``):

- the page's ``<title>`` says it is missing (the patterns that already refuse its metadata);
- a deep URL was redirected to its own site's front page (InternetArchiveBot's "redirect to root");
- the host answered its probe with a 2xx, and this page is the same page: the same final URL after a
  redirect, or the same title and nearly the same size. The second (``looks_like_probe``) is weaker: a
  single-page app or a CMS answers every URL with one shell, so it counts only once the host has shown a
  distinct page (``is_distinct``); ``check.workers`` holds such pages until then, and judges them ``ok``
  if the host never does.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pipeline.models import ANSWERED, FetchedPage, Observation, Outcome
from pipeline.text import fold

_TITLE = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_INDEX = re.compile(r"(?:index|default|home)(?:\.\w+)?", re.IGNORECASE)
SIZE_TOLERANCE = 0.1  # "nearly the same size": within 10 % of the larger
# Query keys a front-page redirect may carry that do not make it another page (tracking, "came from").
_TRACKING = re.compile(r"(?:ref|referrer|from|source|src|utm_\w+|fbclid|gclid|redirected?)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies the page a URL landed on: where it ended, its title and its size."""

    url: str
    final_url: str
    title: str
    size: int


def probe_url(origin: str) -> str:
    """A URL on ``origin`` (``scheme://host:port``) that no site can have a page for."""
    return f"{origin}/{secrets.token_hex(12)}-pipeline-soft404-probe"


def fingerprint(page: FetchedPage, url: str) -> Fingerprint:
    """The fingerprint of the page head fetched for ``url``: final URL, ``<title>`` text, size (Content-Length
    if given)."""
    found = _TITLE.search(page.body)
    title = ""
    if found:
        title = " ".join(html.unescape(found.group(1).decode("utf-8", "replace")).split())
    try:
        size = int(page.headers.get("content-length", ""))
    except ValueError:
        size = len(page.body)
    return Fingerprint(url, page.final_url, title, size)


def _is_html(page: FetchedPage) -> bool:
    kind = page.content_type.split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml")


def _site(host: str | None) -> str:
    host = (host or "").lower()
    return host[4:] if host.startswith("www.") else host


def redirected_to_root(url: str, final_url: str | None) -> bool:
    """Pure: a deep URL (not a front or index page) that ended on its own site's front page."""
    if not final_url or final_url == url:
        return False
    asked, landed = urlsplit(url), urlsplit(final_url)
    if _site(asked.hostname) != _site(landed.hostname) or not _is_front(landed.path):
        return False
    keys = [pair.split("=", 1)[0] for pair in landed.query.split("&") if pair]
    if not all(_TRACKING.fullmatch(key) for key in keys):
        return False  # "/?lang=en", "/?q=...": another page than the front page
    return not _is_front(asked.path)


def _is_front(path: str) -> bool:
    """Whether a path is a site's front page: "/", "" or a single index page ("/index.html")."""
    segments = [part for part in path.split("/") if part]
    return not segments or (
        len(segments) == 1 and path.startswith("/") and bool(_INDEX.fullmatch(segments[0]))
    )


def same_page(page: Fingerprint, probe: Fingerprint) -> bool:
    """Pure: whether a page is the answer its host gives to a URL that cannot exist."""
    if probe.final_url != probe.url and page.final_url != page.url and page.final_url == probe.final_url:
        return True  # both sent to the same place (a "not found" page, a search page)
    if probe.final_url != probe.url and page.final_url == page.url == probe.final_url:
        return False  # the page the probe was sent to (the front page), asked for directly: not its copy
    if not probe.title or page.title != probe.title:
        return False
    larger = max(page.size, probe.size)
    return larger > 0 and abs(page.size - probe.size) <= SIZE_TOLERANCE * larger


def _fingerprint_of(obs: Observation) -> Fingerprint | None:
    """The fingerprint of an alive HTML page checked with its body, else None."""
    if obs.outcome not in ANSWERED or obs.page is None or not _is_html(obs.page):
        return None
    return fingerprint(obs.page, obs.url)


def looks_like_probe(obs: Observation, probe: Fingerprint | None) -> bool:
    """Pure: whether the only sign against this page is its likeness (title, size) to the probe answer."""
    mine = _fingerprint_of(obs)
    if mine is None or probe is None or redirected_to_root(obs.url, obs.final_url):
        return False
    if mine.title and says_missing(mine.title):
        return False
    return same_page(mine, probe)


def is_distinct(obs: Observation, probe: Fingerprint | None) -> bool:
    """Pure: whether this is a healthy HTML page unlike the probe answer (the host serves distinct pages)."""
    mine = _fingerprint_of(obs)
    return mine is not None and probe is not None and judge(obs, probe) is obs and bool(mine.title)


def judge(obs: Observation, probe: Fingerprint | None) -> Observation:
    """The observation, or a hard "soft 404" failure when one of the three signs shows."""
    if obs.outcome not in ANSWERED:
        return obs
    reason = None
    if redirected_to_root(obs.url, obs.final_url):
        reason = f"soft 404: redirected to the site's front page {obs.final_url}"
    elif obs.page is not None and _is_html(obs.page):
        mine = fingerprint(obs.page, obs.url)
        if mine.title and says_missing(mine.title):
            reason = f"soft 404: the page's title {mine.title!r} says it is missing"
        elif probe is not None and same_page(mine, probe):
            reason = "soft 404: the same page the site serves for a URL that cannot exist"
    elif (
        obs.page is None  # checked without a body (HEAD): only where it was sent tells it from the probe
        and obs.redirects
        and probe is not None
        and same_page(Fingerprint(obs.url, obs.final_url or obs.url, "", 0), probe)
    ):
        reason = "soft 404: sent where the site sends a URL that cannot exist"
    if reason is None:
        return obs
    return replace(obs, outcome=Outcome.HARD, reason=reason)


_TITLE_PARTS = re.compile(r"\s+[|\-–—:·»]\s+|\s*\|\s*")


def says_missing(title: str) -> bool:
    """Whether a page title says the page is missing ("Page not found | Site"): the soft-404 patterns."""
    return any(_SOFT_404.fullmatch(words) for words in _title_parts(title))


def _title_parts(title: str) -> list[str]:
    return [fold(part).strip(" .!?…'\"‘’“”") for part in _TITLE_PARTS.split(title)]


_MISSING = (
    r"(?:not\s+(?:be\s+)?found|(?:can(?:not|['’]?t)|could(?:\s+not|n['’]?t))\s+(?:be\s+found|find)"
    r"|(?:does|do)(?:\s+not|n['’]?t)\s+exist|no\s+longer\s+(?:exists|available)|unavailable|missing)"
)

_SOFT_404 = re.compile(
    rf"""(?:error\s*)?(?:404|410)(?:\s*error)?(?:\s*-?\s*(?:page\s+)?not\s+found)? | error\s+404
      | (?:page|file|article|content|document|post|resource|site)s?
        \s+(?:was\s+|is\s+|you\s+requested\s+)?{_MISSING}
      | not\s+found | nothing\s+(?:was\s+)?found(?:\s+for\s+.*)?
      | (?:oops|sorry|uh[\s-]oh)\b.*{_MISSING}.* | (?:we\s+)?(?:can(?:not|['’]?t)|could(?:\s+not|n['’]?t))
        \s+find\s+(?:that|this|the)\s+page""",
    re.IGNORECASE | re.VERBOSE,
)


# Each pattern must fill a whole part of the title between separators ("Page not found | Site", "Site - 404"),
# so an article that merely mentions a 404 or an error is not taken for one.
