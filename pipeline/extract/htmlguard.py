"""Bound the work an HTML parser does on one page: markup -> a prefix that is cheap to parse (pure).

Reads: decoded HTML text. Returns: the text cut before the tag at which the document becomes nested deeper
than ``MAX_DEPTH`` elements or holds more than ``MAX_TAGS`` tags (the whole text when it does neither), and
a parsed tree of it (:func:`parse`). Settings: none.

Why: an HTML tree builder spends time quadratic in nesting depth (lexbor: 40,000 nested ``<div>`` take
over a second, and far longer on a busy machine), so a hostile or broken page could stall a run. Real pages
nest a few dozen levels deep and hold a few thousand tags; everything a page declares about itself sits in
its first tags, so the prefix keeps it. The scan is a forward regex pass: raw-text elements (``script``,
``style`` …) are skipped whole, void elements and elements the parser closes implicitly (``p``, ``li``,
``td`` …) do not count towards the depth.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

__all__ = ["MAX_DEPTH", "MAX_TAGS", "bounded", "parse"]

MAX_DEPTH = 512  # open elements at once
MAX_TAGS = 100_000  # start and end tags in one page

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]{0,63})")
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"})
_RAW_OPEN = re.compile(r"<(" + "|".join(sorted(_RAW_TEXT)) + r")(?=[\s/>])", re.IGNORECASE)
_RAW_END = {name: re.compile(rf"</{name}", re.IGNORECASE) for name in _RAW_TEXT}
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
_IMPLIED_END = frozenset(
    {"p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody", "thead", "tfoot"}
    | {"rb", "rt", "rp", "rtc", "colgroup", "caption", "html", "head", "body"}
)
_NO_DEPTH = _VOID | _IMPLIED_END


def bounded(html: str) -> str:
    """``html`` itself, or its prefix before the tag that passes ``MAX_DEPTH`` or ``MAX_TAGS``."""
    if html.count("<") <= MAX_DEPTH:
        return html  # too few tags to nest that deep: nothing to scan
    depth = tags = 0
    position = 0
    while True:
        raw = _RAW_OPEN.search(html, position)
        stop = raw.start() if raw else len(html)
        # findall over each stretch between raw-text elements: one C call, no match object per tag.
        for index, (closing, name) in enumerate(_TAG.findall(html, position, stop)):
            name = name.lower()
            tags += 1
            if name in _NO_DEPTH:
                pass
            elif closing:
                depth -= depth > 0
            else:
                depth += 1
            if depth > MAX_DEPTH or tags > MAX_TAGS:
                return html[: _nth_tag(html, position, stop, index)]
        if raw is None:
            return html
        tags += 1
        if tags > MAX_TAGS:
            return html[: raw.start()]
        end = _RAW_END[raw.group(1).lower()].search(html, raw.end())
        if end is None:
            return html  # the rest is text to the parser
        position = end.end()


def _nth_tag(html: str, start: int, stop: int, index: int) -> int:
    for count, tag in enumerate(_TAG.finditer(html, start, stop)):
        if count == index:
            return tag.start()
    return stop


def parse(html: str) -> LexborHTMLParser:
    """A lexbor tree of the bounded prefix of ``html``."""
    return LexborHTMLParser(bounded(html))
