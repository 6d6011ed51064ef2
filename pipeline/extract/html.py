"""HTML -> PageMeta: the metadata a page declares about itself (pure, selectolax).

Reads: the bytes of a fetched page (already capped by ``http.max_page_bytes``), its final URL after redirects
and its response headers (lower-cased names; only ``content-type`` is used, for the charset).
Returns: a :class:`~pipeline.models.PageMeta` whose ``sources`` says which source supplied each field.
Settings: none; the fetch around it (and its byte cap) lives in :mod:`pipeline.check`.

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser

from pipeline.extract import BODY, htmlguard, pagebody
from pipeline.extract.charset import detect_encoding
from pipeline.extract.fields import (
    _host_labels,
    _pick,
    _pick_url,
    _pick_whole,
    _resolve,
    _says_something,
    _squash,
    _strip_site_name,
    _valid,
    _valid_image,
)
from pipeline.extract.guard import (
    _error_reason,
)
from pipeline.extract.jsonld import LdFacts, pixels
from pipeline.models import ImageMeta, PageMeta
from pipeline.text import fold

__all__ = ["BODY", "scrape"]


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


@dataclass
class _Declared:
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


def _collect(tree: LexborHTMLParser) -> _Declared:
    found = _Declared()
    for node in tree.css("meta, link, title, base, script"):
        tag, attrs = node.tag, node.attributes
        if tag == "meta":
            content = attrs.get("content")
            content = fold(content if content is not None else attrs.get("value") or "")
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
            found.title = found.title or fold(node.text()) or None
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


def _add_from_body(found: _Declared, body: bytes, start: int, encoding: str) -> None:
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


def _image_candidates(found: _Declared, ld: LdFacts) -> Iterator[tuple[str, ImageMeta]]:
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
