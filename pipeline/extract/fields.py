"""Choosing one value per metadata field: first usable source, whole over shortened, site names stripped.

Reads: candidate strings in source order and the page URL. Returns: the chosen value (and records its source).
Settings: none. Pure.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

from pipeline.models import ImageMeta


def _says_something(text: str, site_words: set[str]) -> bool:
    """Not only the site's name ("Engadget") and not a placeholder (an unrendered template, "null")."""
    return _squash(text) not in site_words and _PLACEHOLDER_TEXT.fullmatch(text) is None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid(text: str | None) -> str | None:
    """Text that can be written anywhere: JSON-LD's ``\\ud83d`` escapes can leave half an emoji behind."""
    return _SURROGATE.sub("\ufffd", text) if text else text


def _valid_image(image: ImageMeta) -> ImageMeta:
    url, alt, kind = _valid(image.url) or "", _valid(image.alt), _valid(image.type)
    return ImageMeta(url, image.width, image.height, alt, kind)


def _pick(sources: dict[str, str], name: str, candidates: list[tuple[str, str | None]]) -> str | None:
    for source, value in candidates:
        if value:
            sources[name] = source
            return value
    return None


_CUT = re.compile(r"\s*(?:\.{3}|…)$")


_END_MARK = re.compile(r"\s*[.!?;:,]$")


_SHORTENED_MIN = 40  # characters: a shorter prefix ("News.") is a label, not a statement cut short


def _pick_whole(sources: dict[str, str], name: str, candidates: list[tuple[str, str | None]]) -> str | None:
    """The first value, unless another source holds the same text whole: the first was cut (ends in
    ``...``/``…``), or it was closed early with a full stop where the other goes on (``…a new warning.``
    against ``…a new warning: earth is warming too fast.``): one statement shortened, not another text."""
    chosen = _pick(sources, name, candidates)
    if chosen is None:
        return None
    cut = _CUT.search(chosen)
    if cut is not None:
        stem = chosen[: cut.start()].casefold()
    else:
        # Only a text closed early by its own full stop: a bare prefix is more often the other text with
        # the site's name or keywords appended ("… John Cusack" / "… John Cusack FYE").
        end = _END_MARK.search(chosen)
        if end is None or end.start() < _SHORTENED_MIN:
            return chosen
        stem = chosen[: end.start()].casefold()
    for source, value in candidates:
        if not value or value == chosen or len(value) <= len(stem) or _CUT.search(value):
            continue
        folded = value.casefold()
        if folded.startswith(stem) and (cut is not None or not folded[len(stem)].isalnum()):
            sources[name] = source
            return value
    return chosen


def _pick_url(
    sources: dict[str, str], name: str, base: str, candidates: list[tuple[str, str | None]]
) -> str | None:
    resolved = [(source, _resolve(value, base) if value else None) for source, value in candidates]
    return _pick(sources, name, resolved)


def _resolve(value: str, base: str) -> str | None:
    try:
        resolved = urljoin(base, value.strip())
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 host) in the page
        return None
    return resolved if resolved.startswith(("http://", "https://")) else None


_SEPARATOR = re.compile(r"\s+(?:[|/·»:]|::|-{1,2}|–|—)\s+|\s*[_|｜]\s*|(?<=[^\x00-\x7f])-(?=[^\x00-\x7f])")


_HOST_NOISE = frozenset({"www", "com", "org", "net", "news", "co", "uk", "blog", "blogs", "html"})


def _strip_site_name(title: str, site_names: list[str], host: str) -> str:
    """Drop the first or last part of a ``<title>`` when it names the site ("… | CNN", "BBC News - …")."""
    separators = list(_SEPARATOR.finditer(title))
    if not separators:
        return title
    names = {_squash(name) for name in site_names} - {""}
    labels = set(_host_labels(host))

    def names_site(part: str) -> bool:
        squashed = _squash(part)
        return bool(squashed) and (
            any(squashed in name or (len(name) > 2 and name in squashed) for name in names)
            or any(label in squashed for label in labels)
        )

    if names_site(title[separators[-1].end() :]):
        kept = title[: separators[-1].start()]
    elif names_site(title[: separators[0].start()]):
        kept = title[separators[0].end() :]
    else:
        return title
    return kept if len(kept) >= 8 else title


def _host_labels(url_or_host: str) -> list[str]:
    """The labels of a host that name a site: ``www.engadget.com`` -> ``["engadget"]``."""
    host = (urlsplit(url_or_host).hostname or "") if "/" in url_or_host else url_or_host
    return [label for label in host.lower().split(".") if len(label) > 2 and label not in _HOST_NOISE]


def _squash(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text.lower()) if char.isalnum())


# A text that says nothing: an unrendered template ("{{ page.description }}", "${desc}", "<%= d %>",
# "%%excerpt%%"), a serialised nothing ("undefined", "null", "[object Object]") or the field's own name.
_PLACEHOLDER_TEXT = re.compile(
    r"\{\{.*\}\}|\{%.*%\}|\$\{.*\}|<%.*%>|%%.*%%|\[object \w+\]"
    r"|(?:undefined|null|none|nil|nan|n/?a|false|true|(?:og:|twitter:)?description|excerpt|summary)",
    re.IGNORECASE | re.DOTALL,
)
