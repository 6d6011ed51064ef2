"""A URL to request, parsed: ``request_url`` (the same ``httpx.URL`` as ``httpx.URL(url)``, faster).

Reads no settings. Returns ``httpx.URL``s; no I/O. Also ``origin_of``, the ``scheme://authority`` of a URL as
httpx splits it, which ``pipeline.check.batch`` parses alone to judge a URL and find its host.

A host's queued URLs wait as their text (``pipeline.check.queue``) and are parsed when a worker takes one:
httpx's parse of a whole URL cost 37-85 us here (a tenth of the check process's work per request), most of it
in the origin (the authority's pattern, the host's IP address validated, the port) and in quoting. The
origin is parsed once per origin instead, and only the rest (path, query, fragment) for each URL, by httpx's
own functions in httpx's order (``httpx._urlparse.urlparse``, pinned with httpx below 0.29), so that every
part comes out as httpx makes it (8 us); a URL off this path, and any refusal, goes through ``httpx.URL``.
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


def origin_of(url: str) -> str | None:
    """``scheme://authority`` of a printable http(s) URL of sane length, as httpx splits it; else None."""
    scheme, found, _ = url.partition("://")
    if not found or scheme.lower() not in ("http", "https") or len(url) > _LONGEST or not url.isprintable():
        return None
    end = _AUTHORITY_END.search(url, len(scheme) + 3)
    assert end is not None  # the pattern matches at the end of the text at the latest
    return url[: end.start()]


def request_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``: the same parts, with the origin's parse made once per origin (raises as it)."""
    origin = origin_of(url)
    parsed = _parsed_origin(origin) if origin is not None else None
    if origin is None or parsed is None:
        return httpx.URL(url)
    # As httpx's pattern splits what follows the authority: the path up to "?" or "#", the query up to "#".
    rest, hashed, fragment = url[len(origin) :].partition("#")
    path, asked, query = rest.partition("?")
    try:
        validate_path(path, has_scheme=True, has_authority=True)
    except httpx.InvalidURL:
        return httpx.URL(url)  # for httpx's own error
    made = httpx.URL.__new__(httpx.URL)
    made._uri_reference = parsed._replace(
        path=_quoted(normalize_path(path), PATH_SAFE, _PATH_KEPT),
        query=_quoted(query, QUERY_SAFE, _QUERY_KEPT) if asked else None,
        fragment=_quoted(fragment, FRAG_SAFE, _FRAG_KEPT) if hashed else None,
    )
    return made


def _quoted(text: str, safe: str, kept: str) -> str:
    """httpx's ``quote(text, safe)``: a text made only of characters it keeps (``kept``) comes back as it is
    from httpx too, so it is returned without httpx's search for "%xx" sequences in it."""
    return text if not text.rstrip(kept) else quote(text, safe=safe)


# What httpx's quote never escapes in each part (its own fast path's test: unreserved or safe).
_PATH_KEPT = UNRESERVED_CHARACTERS + PATH_SAFE
_QUERY_KEPT = UNRESERVED_CHARACTERS + QUERY_SAFE
_FRAG_KEPT = UNRESERVED_CHARACTERS + FRAG_SAFE


@functools.lru_cache(maxsize=4096)  # a corpus has far fewer hosts than URLs
def _parsed_origin(origin: str) -> ParseResult | None:
    """The parse of an origin with a scheme and a host (what the fast path needs), else None."""
    try:
        parsed: ParseResult = httpx.URL(origin)._uri_reference
    except httpx.InvalidURL:
        return None
    return parsed if parsed.scheme and parsed.host else None
