"""Front-matter -> URL references: which fields hold URLs, where, and whether each can be checked.

Reads: an article's front-matter data and ``settings.links`` (fields, nested, exclude).
Returns: ``LinkRef`` records with field paths such as ``related[2].ampWebUrl`` and
``related[0].images[0].url``;
an invalid reference (``htp:/x``, empty, ``javascript:``, ``mailto:``, ``file:``, malformed IPv6, a host
ending in a number that is no IPv4 address) carries ``normalized=None`` and a reason, and is never requested.
Non-canonical IPv4 hosts (``2130706433``, ``127.1``, ``0x7f000001``, ``0``) are rewritten to dotted
decimal as browsers do (WHATWG URL host parsing), so the address guard judges the real address.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pipeline.models import FieldPath, LinkRef, format_field_path

if TYPE_CHECKING:  # the settings are read, never built, here: the check's process loads no pydantic
    from pipeline.config import LinkSettings

_SCHEMES = {"http", "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")


# Corpora repeat URLs across articles; parsing is the hot path. 16,384 URLs (about 300 bytes each with the
# URL as written, 5 MB): full on any corpus of some thousand articles, so it grows with none (at 65,536
# it held 20 MB and was still filling at 50,000 articles: a third of a KiB per article of memory's peak).
@functools.lru_cache(maxsize=1 << 14)
def normalize_url(raw: str) -> tuple[str | None, str]:
    """Return (the URL we would request, "") or (None, why it cannot be checked).

    Normalisation is conservative so that one resource is requested once: scheme and host lower-cased,
    IDNA host, default port and fragment dropped, an empty path becomes ``/``; path and query are kept
    as written (servers may treat them case- and order-sensitively).
    """
    text = raw.strip()
    if not text:
        return None, "empty URL"
    if _BAD_CHARACTER.search(text):
        return None, "URL contains white space or control characters"
    # Everything but the path and query is judged and rewritten from the origin (``scheme://netloc``, as
    # urlsplit splits it) alone: normalised once per origin, the path and query then kept as written.
    colon = text.find(":")
    if text[colon : colon + 3] == "://" and text[:colon].isascii() and text[:colon].lower() in _SCHEMES:
        end = _NETLOC_END.search(text, colon + 3)
        assert end is not None  # the pattern matches at the end of the text at the latest
        origin, reason = _normalize_origin(text[: end.start()])
        if origin is None:
            return None, reason
        path, _, query = text[end.start() :].partition("#")[0].partition("?")
        return f"{origin}{path or '/'}{'?' if query else ''}{query}", ""
    return _normalize(text)


_NETLOC_END = re.compile(r"[/?#]|\Z")  # urlsplit's netloc: up to the first of these


def _normalize(text: str) -> tuple[str | None, str]:
    """``normalize_url`` of a stripped text free of white space and control characters, parsed whole."""
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return None, f"malformed URL: {exc}"
    scheme = parts.scheme.lower()
    if not scheme:
        return None, "not an absolute URL (no scheme)"
    if scheme not in _SCHEMES:
        return None, f"unsupported scheme {scheme!r} (only http and https are checked)"
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        return None, f"malformed URL: {exc}"
    if not host:
        return None, "URL has no host"
    host_text = _normalize_host(host, bracketed="[" in parts.netloc)
    if host_text is None:
        return None, f"malformed host {host!r}"
    netloc = host_text
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host_text}:{port}"
    if parts.username or parts.password:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    return urlunsplit(SplitResult(scheme, netloc, path, parts.query, "")), ""


@functools.lru_cache(maxsize=1 << 12)  # a corpus names far fewer origins than URLs: one parse an origin
def _normalize_origin(origin: str) -> tuple[str | None, str]:
    """``scheme://netloc`` normalised, without the path ``/`` that ``_normalize`` gives it; else (None, why).

    urlsplit takes the scheme, the netloc and so the host, port and user from the origin alone, and every
    refusal is about them: an origin's verdict is that of every URL under it.
    """
    normalized, reason = _normalize(origin)
    return (normalized[:-1] if normalized is not None else None), reason


@functools.lru_cache(maxsize=1 << 12)  # a corpus names far fewer hosts than URLs: one parse a host
def _normalize_host(host: str, *, bracketed: bool) -> str | None:
    if bracketed:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    host = host.rstrip(".").lower()
    if not host or ".." in host:
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not re.fullmatch(r"[a-z0-9_.-]+", ascii_host) or len(ascii_host) > 253:
        return None
    if ends_in_number(ascii_host):
        return whatwg_ipv4(ascii_host)
    return ascii_host


_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


def ends_in_number(host: str) -> bool:
    """WHATWG "ends in a number": the host's last label is a number, so it must parse as IPv4."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    return bool(_NUMBER.fullmatch(labels[-1]))


def whatwg_ipv4(host: str) -> str | None:
    """The dotted-decimal form of a WHATWG IPv4 host (``127.1``, ``0x7f000001``, ``017700000001``), or None.

    Parts may be decimal, hex (``0x``) or octal (leading ``0``); the last part fills the remaining bytes.
    """
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        if not _NUMBER.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not re.fullmatch(r"[0-7]+", part):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return str(ipaddress.IPv4Address(value))


def extract_refs(
    article: Path,
    data: Mapping[str, Any],
    settings: LinkSettings,
    line_of: Callable[[FieldPath], int | None] | None = None,
) -> list[LinkRef]:
    """Every URL reference of one article, in document order of the configured fields.

    With ``line_of`` (``Document.line_of``), each ref also carries the file line of its field.
    """
    refs: list[LinkRef] = []
    for path, value in _walk_unit(data, (), settings):
        refs.append(_make_ref(article, path, value, line_of))
    for list_key in settings.nested:
        items = data.get(list_key)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                for path, value in _walk_unit(item, (list_key, index), settings):
                    refs.append(_make_ref(article, path, value, line_of))
    return refs


def _walk_unit(
    unit: Mapping[str, Any], prefix: FieldPath, settings: LinkSettings
) -> Iterator[tuple[FieldPath, Any]]:
    for spec in settings.fields:
        if "[]." in spec:
            list_key, leaf = spec.split("[].", 1)
            items = unit.get(list_key)
            if not isinstance(items, list):
                continue
            for index, item in enumerate(items):
                if isinstance(item, Mapping) and leaf in item and item[leaf] is not None:
                    yield (*prefix, list_key, index, leaf), item[leaf]
        elif spec in unit and unit[spec] is not None:
            yield (*prefix, spec), unit[spec]


def _make_ref(
    article: Path, path: FieldPath, value: Any, line_of: Callable[[FieldPath], int | None] | None
) -> LinkRef:
    field_path = sys.intern(format_field_path(path))  # the same few paths recur in every article
    line = line_of(path) if line_of is not None else None
    if not isinstance(value, str):
        reason = f"not a string ({type(value).__name__})"
        return LinkRef(article, field_path, repr(value), None, reason, line, path)
    normalized, reason = normalize_url(value)
    if normalized == value:
        value = normalized  # one string object instead of two equal ones: memory on million-file corpora
    return LinkRef(article, field_path, value, normalized, reason, line, path)


def compile_excludes(settings: LinkSettings) -> list[re.Pattern[str]]:
    """The configured exclude patterns, compiled (validated at config load)."""
    return [re.compile(pattern) for pattern in settings.exclude]


def is_excluded(url: str, patterns: list[re.Pattern[str]]) -> bool:
    """True when a URL matches any exclude pattern (``re.search``)."""
    return any(pattern.search(url) for pattern in patterns)
