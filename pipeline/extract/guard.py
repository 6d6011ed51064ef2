"""The page-metadata guard: is this an error page, a bot wall or a "not found" title?

Reads: a page's extracted metadata or title. Returns: a reason (or None) / a bool. Settings: none. Pure.
"""

from __future__ import annotations

import re

from pipeline.extract.fields import (
    _fold,
)
from pipeline.models import PageMeta

# Each pattern must fill a whole part of the title between separators ("Page not found | Site", "Site - 404"),
# so an article that merely mentions a 404 or an error is not taken for one.
_MISSING = (
    r"(?:not\s+(?:be\s+)?found|(?:can(?:not|['’]?t)|could(?:\s+not|n['’]?t))\s+(?:be\s+found|find)"
    r"|(?:does|do)(?:\s+not|n['’]?t)\s+exist|no\s+longer\s+(?:exists|available)|unavailable|missing)"
)


_BOT_WALL = re.compile(
    r"""just\s+a\s+moment | attention\s+required | access\s+denied | (?:error\s+)?(?:403\s+)?forbidden
      | one\s+more\s+step | please\s+wait | robot\s+check | security\s+check
      | (?:429\s+)?too\s+many\s+requests | request\s+(?:rejected|blocked)
      | (?:503\s+)?service\s+(?:temporarily\s+)?unavailable | (?:502\s+)?bad\s+gateway
      | (?:500\s+)?internal\s+server\s+error | error(?:\s+5\d\d)? | captcha | human\s+verification
      | are\s+you\s+a\s+(?:robot|human) | verify(?:ing)?\s+(?:that\s+)?you\s+are\s+(?:a\s+)?human.*
      | pardon\s+our\s+interruption | checking\s+(?:your\s+)?browser.* | ddos-guard
      | access\s+to\s+this\s+page\s+has\s+been\s+denied""",
    re.IGNORECASE | re.VERBOSE,
)


_TITLE_PARTS = re.compile(r"\s+[|\-–—:·»]\s+|\s*\|\s*")


def looks_like_error_page(meta: PageMeta) -> str | None:
    """Why a page looks like a soft 404 or a bot wall (so it must not supply metadata), or None."""
    return _error_reason(meta.title or "")


def says_missing(title: str) -> bool:
    """Whether a page title says the page is missing ("Page not found | Site"): the soft-404 patterns."""
    return any(_SOFT_404.fullmatch(words) for words in _title_parts(title))


def _title_parts(title: str) -> list[str]:
    return [_fold(part).strip(" .!?…'\"‘’“”") for part in _TITLE_PARTS.split(title)]


def _error_reason(title: str) -> str | None:
    for words in _title_parts(title):
        if _SOFT_404.fullmatch(words):
            return f"title {title!r} looks like a soft 404"
        if _BOT_WALL.fullmatch(words):
            return f"title {title!r} looks like a bot wall or a server error page"
    return None


_SOFT_404 = re.compile(
    rf"""(?:error\s*)?(?:404|410)(?:\s*error)?(?:\s*-?\s*(?:page\s+)?not\s+found)? | error\s+404
      | (?:page|file|article|content|document|post|resource|site)s?
        \s+(?:was\s+|is\s+|you\s+requested\s+)?{_MISSING}
      | not\s+found | nothing\s+(?:was\s+)?found(?:\s+for\s+.*)?
      | (?:oops|sorry|uh[\s-]oh)\b.*{_MISSING}.* | (?:we\s+)?(?:can(?:not|['’]?t)|could(?:\s+not|n['’]?t))
        \s+find\s+(?:that|this|the)\s+page""",
    re.IGNORECASE | re.VERBOSE,
)
