"""A URL to request, parsed as httpx parses it, its scheme and authority once per origin.

Reads no settings. Returns ``origin_of`` (the ``scheme://authority`` text of a URL on the fast path) and
``request_url`` (the ``httpx.URL`` of a URL the check requests, equal to ``httpx.URL(url)``); no I/O.

Why: httpx parses a URL in about 45 us here, a check's largest single cost per URL after the request
itself, and most of it is the scheme, the authority and their checks, which every URL of a host shares.
For a URL on the fast path (http or https, printable, of sane length), the origin's parse is kept and only
the path, query and fragment are made, with httpx's own functions, in httpx's own order:
``tests/test_check_urls.py`` pins the result to ``httpx.URL(url)``'s on generated URLs. ``httpx<0.29`` is
pinned: its private parser's names are used here and nowhere else.
"""

from __future__ import annotations

import functools
import re

import httpx
from httpx._urlparse import (
    FRAG_SAFE,
    PATH_SAFE,
    QUERY_SAFE,
    UNRESERVED_CHARACTERS,
    ParseResult,
    normalize_path,
    quote,
    validate_path,
)

_LONGEST = 8192  # characters; httpx refuses URLs past 65,536, far from any taken by the fast path
_AUTHORITY_END = re.compile(r"[/?#]|\Z")  # httpx's authority: up to the first of these
# What httpx's URL_REGEX matches after the authority.
_REST = re.compile(r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?")


def origin_of(url: str) -> str | None:
    """``scheme://authority`` of a printable http(s) URL of sane length, as httpx splits it; else None."""
    scheme, found, _ = url.partition("://")
    if not found or scheme.lower() not in ("http", "https") or len(url) > _LONGEST or not url.isprintable():
        return None
    end = _AUTHORITY_END.search(url, len(scheme) + 3)
    assert end is not None  # the pattern matches at the end of the text at the latest
    return url[: end.start()]


_KEPT = {safe: UNRESERVED_CHARACTERS + safe for safe in (PATH_SAFE, QUERY_SAFE, FRAG_SAFE)}


def _quote(text: str, safe: str) -> str:
    """httpx's ``quote``: most parts need no escaping and have no ``%``, so ``quote`` would return them
    as they are (its own fast test, without its search for ``%xx`` first)."""
    if "%" not in text and not text.rstrip(_KEPT[safe]):
        return text
    return quote(text, safe=safe)


@functools.lru_cache(maxsize=4096)  # a corpus has far fewer origins than URLs
def _parsed_origin(text: str) -> ParseResult | None:
    try:
        return httpx.URL(text)._uri_reference
    except httpx.InvalidURL:
        return None


def request_url(url: str) -> httpx.URL:
    """``httpx.URL(url)`` (``httpx.InvalidURL`` for a URL it refuses)."""
    found = origin_of(url)
    base = _parsed_origin(found) if found is not None else None
    if found is None or base is None:
        return httpx.URL(url)
    rest = _REST.match(url, len(found))
    assert rest is not None  # every part of the pattern may be empty
    path, query, fragment = rest.group("path", "query", "fragment")
    has_authority = bool(base.userinfo or base.host or base.port is not None)
    validate_path(path, has_scheme=True, has_authority=has_authority)  # as urlparse checks it
    made = httpx.URL.__new__(httpx.URL)
    made._uri_reference = ParseResult(
        base.scheme,
        base.userinfo,
        base.host,
        base.port,
        _quote(normalize_path(path), PATH_SAFE),
        None if query is None else _quote(query, QUERY_SAFE),
        None if fragment is None else _quote(fragment, FRAG_SAFE),
    )
    return made
