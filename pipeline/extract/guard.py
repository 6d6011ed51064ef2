"""The page-metadata guard: is this an error page, a bot wall or a "not found" title?

Reads: a page's extracted metadata or title. Returns: a reason (or None) / a bool. Settings: none. Pure.
"""

from __future__ import annotations

import re

from pipeline.check.soft404 import _SOFT_404, _title_parts
from pipeline.models import PageMeta

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


def looks_like_error_page(meta: PageMeta) -> str | None:
    """Why a page looks like a soft 404 or a bot wall (so it must not supply metadata), or None."""
    return _error_reason(meta.title or "")


def _error_reason(title: str) -> str | None:
    for words in _title_parts(title):
        if _SOFT_404.fullmatch(words):
            return f"title {title!r} looks like a soft 404"
        if _BOT_WALL.fullmatch(words):
            return f"title {title!r} looks like a bot wall or a server error page"
    return None
