"""HTML -> PageMeta: the metadata a page declares about itself (pure, selectolax).

Reads: the bytes of a fetched page (already capped by ``http.max_page_bytes``), its final URL after redirects
and its response headers (lower-cased names; only ``content-type`` is used, for the charset).
Returns: a :class:`~pipeline.models.PageMeta` whose ``sources`` says which source supplied each field.
Settings: none; the fetch around it (and its byte cap) lives in ``check.py``.

Only the head is parsed: the bytes up to ``</head>`` (at most ``_HEAD_CAP``). Metas, links and JSON-LD in
the body are found by a byte search and read only when the head left a field empty. When the page declares
no description or no image at all, the body is parsed for last resorts (:mod:`.pagebody`: first
substantial paragraph, first content image), reported with the source ``body``. Every parse is bounded in
depth and tags by :mod:`pipeline.extract.htmlguard`, so a page of 40,000 nested tags costs milliseconds.
The encoding is chosen by :mod:`pipeline.extract.charset` (BOM, ``Content-Type`` header, ``<meta charset>``,
detection) and JSON-LD blocks are read by :mod:`.jsonld`. Entities are decoded once, by the parser
(JSON-LD, which the parser leaves raw, once by ``jsonld``); whitespace is folded. An error page's own
``<title>`` is kept as its title, so ``looks_like_error_page`` sees it.

Sources, best first (orders measured with ``pipeline.tools.accuracy`` on ``/work/shared/corpora/pages.json``):

- title: JSON-LD ``headline``/``name``, Open Graph, Twitter card, Dublin Core, ``<title>`` (without a part
  that names the site), ``parsely-title``;
- description: Open Graph, Twitter card, JSON-LD, ``meta name|itemprop|http-equiv=description``, Dublin
  Core: the share text a link preview shows, in the order share-preview renderers read it; a text cut
  with ``...``/``…`` gives way to another source holding the same text whole;
- image: every declared image is a candidate, in this order: Open Graph groups (``og:image`` with its
  ``:secure_url``/``:url``/``:width``/``:height``/``:type``/``:alt``), Twitter card, JSON-LD ``image``
  (string, list or ImageObject, ``@id`` references followed), ``itemprop=image``, ``link rel=image_src``.
  A tracking pixel, a lazy-load placeholder or a ``data:`` URL is never chosen; a logo, icon, SVG or an
  image declared (or named) smaller than ``_SMALL_PX`` only when nothing better is declared;
- canonical: ``link rel=canonical``, ``og:url``, JSON-LD ``url``; amp: ``link rel=amphtml``;
- site name: JSON-LD ``publisher.name``, ``og:site_name``, ``application-name``;
- published: JSON-LD ``datePublished``, ``article:published_time`` and kin.

Open Graph and Twitter names are read from ``property=``, ``name=`` and ``itemprop=`` alike. Relative and
protocol-relative URLs are resolved against the final URL and ``<base href>``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from pipeline.extract import htmlguard, pagebody
from pipeline.extract.charset import detect_encoding
from pipeline.extract.jsonld import LdFacts, pixels
from pipeline.models import ImageMeta, PageMeta

__all__ = ["BODY", "declares_share_metadata", "looks_like_error_page", "says_missing", "scrape"]

BODY = "body"  # the source of a field read from the page's body (a last resort), not from declared tags

_HEAD_CAP = 1024 * 1024  # bytes parsed when a page never closes its head
_SMALL_PX = 200  # declared narrower or shorter than this: a thumbnail, icon or button
_PIXEL_PX = 10  # declared at most this size: a tracking pixel

_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
# Bounded repetitions and a search for each script's end that never rescans: hostile pages full of
# unclosed `<meta ` or `<script ` must cost linear time, not minutes (the scan runs on the event loop).
_BODY_META = re.compile(rb"<(?:meta|link)\s[^<>]{0,4096}>", re.IGNORECASE)
_LD_OPEN = re.compile(rb"<script\s[^<>]{0,512}application/ld\+json[^<>]{0,512}>", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(rb"</script\s*>", re.IGNORECASE)
_PUBLISHED_KEYS = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "parsely-pub-date",
    "sailthru.date",
    "pubdate",
    "publishdate",
    "dc.date.issued",
    "dcterms.issued",
    "dcterms.created",
    "dc.date",
)
_TWITTER_IMAGE_KEYS = ("twitter:image", "twitter:image:src", "twitter:image:url", "twitter:image0")

# A stem made only of placeholder words (``blank.gif``, ``spacer_1x1.png``, ``lazy-placeholder.svg``) or a
# path segment that names one.
_PLACEHOLDER = re.compile(
    r"(?:^|/)(?:(?:blank|spacer|pixel|transparent|placeholder|lazy|lazyload|loading|loader|grey|gray|clear|"
    r"empty|trans|dot|px|1x1)[-_]?)+\d*(?:x\d+)?\.\w+$"
    r"|(?:^|[/_.-])(?:placeholder|lazy-?load|1x1)(?:[/_.-]|$)",
    re.IGNORECASE,
)
_LOGO = re.compile(
    r"(?:^|[/_.-])(?:logos?|icons?|favicon|apple-touch-icon|avatars?|sprites?|badge|default[-_]?share)"
    r"(?:[/_.-]|\d|$)",
    re.IGNORECASE,
)
_NAMED_SIZE = re.compile(r"[-_](\d{1,4})x(\d{1,4})\.\w+$")  # WordPress-style thumbnails: photo-150x150.jpg


# A text that says nothing: an unrendered template ("{{ page.description }}", "${desc}", "<%= d %>",
# "%%excerpt%%"), a serialised nothing ("undefined", "null", "[object Object]") or the field's own name.
_PLACEHOLDER_TEXT = re.compile(
    r"\{\{.*\}\}|\{%.*%\}|\$\{.*\}|<%.*%>|%%.*%%|\[object \w+\]"
    r"|(?:undefined|null|none|nil|nan|n/?a|false|true|(?:og:|twitter:)?description|excerpt|summary)",
    re.IGNORECASE | re.DOTALL,
)
_DECLARED_DESCRIPTION = re.compile(
    rb"""(?:property|name|itemprop)\s*=\s*["']?(?:og:|twitter:|dc\.|dcterms\.)?description\b"""
    rb"""|"description"\s*:""",
    re.IGNORECASE,
)
_DECLARED_IMAGE = re.compile(
    rb"""(?:property|name|itemprop)\s*=\s*["']?(?:og:image|twitter:image|image\b)|image_src|"image"\s*:""",
    re.IGNORECASE,
)


def declares_share_metadata(head: bytes) -> bool:
    """Whether a page's head (its bytes up to ``</head>``) declares a description and an image.

    The fetch stops reading at ``</head>`` when it does; otherwise it reads on (within its byte cap) so the
    body can supply the fallbacks. A byte search, not a parse: it runs on the event loop for every page.
    """
    return bool(_DECLARED_DESCRIPTION.search(head)) and bool(_DECLARED_IMAGE.search(head))


def scrape(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> PageMeta:
    """Extract the metadata a page declares from its bytes; ``url`` is the final URL after redirects."""
    head_end = _HEAD_END.search(body, 0, _HEAD_CAP)
    encoding = detect_encoding(body, headers)
    head = body[: head_end.end()] if head_end else body[:_HEAD_CAP]
    head_tree = htmlguard.parse(head.decode(encoding, errors="replace"))
    found = _collect(head_tree)
    if head_end:
        _add_from_body(found, body, head_end.end(), encoding)
    ld = LdFacts.from_blocks(found.ld_blocks)
    base = (_resolve(found.base_href, url) if found.base_href else None) or url
    sources: dict[str, str] = {}

    page_title = found.title or found.meta("og:title")
    if found.title and _error_reason(found.title):
        title = _pick(sources, "title", [("title", found.title)])  # an error page's own words win
    else:
        title = _pick(
            sources,
            "title",
            [
                ("json-ld", ld.title(page_title)),
                ("og", found.meta("og:title")),
                ("twitter", found.meta("twitter:title")),
                ("dc", found.meta("dc:title", "dc.title", "dcterms.title")),
                ("title", found.title),
                ("parsely", found.meta("parsely-title")),
            ],
        )
    if title and sources["title"] == "title":
        names = [name for name in (ld.publisher, found.meta("og:site_name", "application-name")) if name]
        title = _strip_site_name(title, names, urlsplit(url).hostname or "")
    # A "description" that is only the site's name ("Engadget") describes nothing: the next source speaks.
    site_words = {
        _squash(name)
        for name in (ld.publisher, found.meta("og:site_name", "application-name"), *_host_labels(url))
        if name
    }
    description = _pick_whole(
        sources,
        "description",
        [
            (source, text if text and _says_something(text, site_words) else None)
            for source, text in (
                ("og", found.meta("og:description")),
                ("twitter", found.meta("twitter:description")),
                ("json-ld", ld.description),
                ("meta", found.meta("description")),
                ("dc", found.meta("dc:description", "dc.description", "dcterms.description")),
            )
        ],
    )
    canonical = _pick_url(
        sources,
        "canonical",
        base,
        [("link", found.link("canonical")), ("og", found.meta("og:url")), ("json-ld", ld.url)],
    )
    amp = _pick_url(sources, "amp", base, [("link", found.link("amphtml"))])
    # JSON-LD first: its publisher name and date are bare values, where og:site_name often adds a slogan.
    site_name = _pick(
        sources,
        "site_name",
        [
            ("json-ld", ld.publisher),
            ("og", found.meta("og:site_name")),
            ("meta", found.meta("application-name")),
        ],
    )
    published = _pick(
        sources, "published", [("json-ld", ld.published), ("meta", found.meta(*_PUBLISHED_KEYS))]
    )
    images = _rank_images(_image_candidates(found, ld), base)
    if description is None or not images:
        # Last resorts, read only when the page declares nothing: its first paragraph and content image.
        tree = htmlguard.parse(body[head_end.end() :].decode(encoding, "replace")) if head_end else head_tree
        if description is None:
            description = _pick(sources, "description", [(BODY, pagebody.first_paragraph(tree))])
        picture = None if images else pagebody.first_image(tree, base)
        if picture is not None:
            images = [(BODY, ImageMeta(*picture))]
    if images:
        sources["image"] = images[0][0]
    return PageMeta(
        url=url,
        title=_valid(title),
        description=_valid(description),
        images=tuple(_valid_image(image) for _, image in images),
        canonical=_valid(canonical),
        amp=_valid(amp),
        site_name=_valid(site_name),
        published=_valid(published),
        sources=sources,
    )


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


# Each pattern must fill a whole part of the title between separators ("Page not found | Site", "Site - 404"),
# so an article that merely mentions a 404 or an error is not taken for one.
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


@dataclass
class _Found:
    """What the head of a page holds, in document order; names and rels lower-cased, values folded."""

    metas: dict[str, list[str]] = field(default_factory=dict)
    links: dict[str, list[str]] = field(default_factory=dict)
    og_images: list[dict[str, str]] = field(default_factory=list)  # one dict per og:image and its properties
    title: str | None = None
    base_href: str | None = None
    ld_blocks: list[str] = field(default_factory=list)

    def meta(self, *keys: str) -> str | None:
        for key in keys:
            values = self.metas.get(key)
            if values:
                return values[0]
        return None

    def link(self, rel: str) -> str | None:
        values = self.links.get(rel)
        return values[0] if values else None


def _collect(tree: LexborHTMLParser) -> _Found:
    found = _Found()
    for node in tree.css("meta, link, title, base, script"):
        tag, attrs = node.tag, node.attributes
        if tag == "meta":
            content = attrs.get("content")
            content = _fold(content if content is not None else attrs.get("value") or "")
            if not content:
                continue
            for attr in ("property", "name", "itemprop", "http-equiv"):
                for key in (attrs.get(attr) or "").lower().split():  # space-separated names are all meant
                    found.metas.setdefault(key, []).append(content)
                    if key.startswith("og:image"):
                        _add_og_image(found.og_images, key, content)
        elif tag == "link":
            href = (attrs.get("href") or "").strip()
            if href:
                for rel in (attrs.get("rel") or "").lower().split():
                    found.links.setdefault(rel, []).append(href)
                if (attrs.get("itemprop") or "").lower() == "image":
                    found.metas.setdefault("image", []).append(href)
        elif tag == "title":
            found.title = found.title or _fold(node.text()) or None
        elif tag == "base":
            found.base_href = found.base_href or (attrs.get("href") or "").strip() or None
        elif "ld+json" in (attrs.get("type") or "").lower():
            found.ld_blocks.append(node.text())
    return found


def _add_og_image(images: list[dict[str, str]], key: str, value: str) -> None:
    """Structured properties (``og:image:width`` …) describe the ``og:image`` declared just before them."""
    prop = key.removeprefix("og:image").lstrip(":") or "url"
    if prop == "url" and images and images[-1].get("url") == value:
        return  # og:image and og:image:url naming the same image
    if prop == "url" or not images or prop in images[-1]:
        images.append({})
    images[-1][prop] = value


def _add_from_body(found: _Found, body: bytes, start: int, encoding: str) -> None:
    """Metas, links and JSON-LD placed in the body (microdata ``itemprop`` metas live there), read only
    when the head left a field empty; a byte search finds them without parsing the body."""
    has_image = bool(found.og_images) or any(key in found.metas for key in _TWITTER_IMAGE_KEYS)
    if not (has_image and found.meta("description", "og:description")):
        tags = [*_BODY_META.findall(body, start), *(_wrap_ld(block) for block in _ld_blocks(body, start))]
        fragment = b"".join(tags).decode(encoding, errors="replace")
        extra = _collect(htmlguard.parse(fragment))
        for key, values in extra.metas.items():
            found.metas.setdefault(key, []).extend(values)
        for rel, hrefs in extra.links.items():
            found.links.setdefault(rel, []).extend(hrefs)
        found.og_images.extend(extra.og_images)
        found.ld_blocks.extend(extra.ld_blocks)
    elif not (found.meta("og:title") and found.meta(*_PUBLISHED_KEYS)) and body.find(b"ld+json", start) >= 0:
        found.ld_blocks.extend(block.decode(encoding, errors="replace") for block in _ld_blocks(body, start))


def _ld_blocks(body: bytes, start: int) -> Iterator[bytes]:
    """The contents of JSON-LD scripts after ``start``, in one forward pass."""
    position = start
    while (opening := _LD_OPEN.search(body, position)) is not None:
        closing = _SCRIPT_CLOSE.search(body, opening.end())
        if closing is None:
            return  # no script ends after this one: nothing further can be complete
        yield body[opening.end() : closing.start()]
        position = closing.end()


def _wrap_ld(block: bytes) -> bytes:
    return b'<script type="application/ld+json">' + block + b"</script>"


def _image_candidates(found: _Found, ld: LdFacts) -> Iterator[tuple[str, ImageMeta]]:
    for og in found.og_images:
        width, height = pixels(og.get("width")), pixels(og.get("height"))
        secure, plain = og.get("secure_url"), og.get("url")
        if secure and plain and secure.partition(":")[2] != plain.partition(":")[2]:
            # Not the same image over https but another one: the declared size may describe either.
            yield "og", ImageMeta(secure, alt=og.get("alt"))
        elif secure:
            yield "og", ImageMeta(secure, width, height, og.get("alt"), og.get("type"))
        if plain:
            yield "og", ImageMeta(plain, width, height, og.get("alt"), og.get("type"))
    alt = found.meta("twitter:image:alt")
    for key in _TWITTER_IMAGE_KEYS:
        for value in found.metas.get(key, ()):
            yield "twitter", ImageMeta(value, alt=alt)
    for image in ld.images:
        yield "json-ld", image
    for value in found.metas.get("image", ()):
        yield "itemprop", ImageMeta(value)
    for value in found.links.get("image_src", ()):
        yield "link", ImageMeta(value)


def _rank_images(candidates: Iterable[tuple[str, ImageMeta]], base: str) -> list[tuple[str, ImageMeta]]:
    """Resolved, de-duplicated candidates: share images first, then logos and icons; never pixels."""
    good: list[tuple[str, ImageMeta]] = []
    weak: list[tuple[str, ImageMeta]] = []
    seen: set[str] = set()
    for source, image in candidates:
        url = _resolve(image.url, base)
        if url is None or url in seen:
            continue
        seen.add(url)
        path = urlsplit(url).path
        sizes = [size for size in (image.width, image.height) if size]
        named = _NAMED_SIZE.search(path)
        if named:
            sizes += [int(named.group(1)), int(named.group(2))]
        if _PLACEHOLDER.search(path) or (sizes and min(sizes) <= _PIXEL_PX):
            continue
        small = bool(sizes) and min(sizes) < _SMALL_PX
        # A size the page declares outranks a guess from the file name: a 1200x1200 og:image named
        # "logo" is the share image the site chose (OGP: the first declared tag wins).
        declared_large = bool(image.width and image.height) and not small
        named_icon = _LOGO.search(path) is not None and not declared_large
        iconic = named_icon or path.lower().endswith((".ico", ".svg"))
        (weak if small or iconic else good).append((source, replace(image, url=url)))
    return good + weak


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


def _fold(text: str) -> str:
    return " ".join(text.split())
