"""A page's body -> a fallback description and image, for pages that declare neither (pure, selectolax).

Reads: the decoded body of a page (after ``</head>``, already capped by ``http.max_page_bytes`` and bounded
by :mod:`.htmlguard`) and the URL to resolve image sources against. Returns: the first substantial
paragraph (:func:`first_paragraph`) and the first content image (:func:`first_image`), or None.
Settings: none; ``metadata.excerpt.from_body`` / ``metadata.images.from_body`` decide whether they are used.

These are last resorts, as in metascraper and readability: a page's declared share text and image always
win. Paragraphs and images inside the article (``<article>``, ``<main>``, ``itemprop=articleBody``) are
preferred; navigation, headers, footers, asides, forms, cookie and consent banners, bylines, share bars and
captions are skipped by their element or by words in their ``class``/``id``/``role``. An image must not be
a logo, icon, avatar, sprite, badge or tracking pixel, nor declared narrower than ``MIN_IMAGE_PX``; the
runner's probe checks the real width of an image that declares none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pipeline.extract import MIN_IMAGE_PX
from pipeline.extract.jsonld import pixels

__all__ = ["MIN_IMAGE_PX", "first_image", "first_paragraph"]

_MIN_PARAGRAPH = 80  # characters; shorter "paragraphs" are datelines, captions, buttons
_MIN_WORDS = 10
_CONTENT = "article, main, [itemprop=articleBody], [role=main]"
_SKIP_TAGS = frozenset(
    {"nav", "header", "footer", "aside", "form", "figcaption", "button", "label", "noscript", "template"}
    | {"dialog", "menu", "select", "address", "blockquote"}
)
_SKIP_WORDS = re.compile(
    r"(?:^|[\s_-])(?:cookies?|consent|gdpr|banner|byline|author|share|sharing|social|newsletter|subscribe|"
    r"promo|advert|ads?|sponsor(?:ed)?|related|comments?|breadcrumbs?|menu|nav(?:bar|igation)?|footer|"
    r"header|sidebar|caption|credits?|dateline|timestamp|meta|tags|popup|modal|disclaimer|masthead)"
    r"(?:$|[\s_-])",
    re.IGNORECASE,
)
_WORD_LEVELS = 4  # the node and its three nearest ancestors
_BYLINE = re.compile(r"^(?:by|von|par|por|di)\s+\S+", re.IGNORECASE)
_NOT_CONTENT_IMAGE = re.compile(
    r"(?:^|[/_.-])(?:logos?|icons?|favicon|apple-touch-icon|avatars?|sprites?|badges?|emojis?|pixel|"
    r"tracking|tracker|spacer|blank|transparent|placeholder|lazy-?load|1x1|beacon|gravatar|button|arrow)"
    r"(?:[/_.-]|\d|$)",
    re.IGNORECASE,
)
_LAZY_SOURCES = ("data-src", "data-lazy-src", "data-original", "data-url")


def first_paragraph(tree: LexborHTMLParser) -> str | None:
    """The first paragraph of real prose: long enough, not in navigation or a banner, not a byline.

    A ``<p>`` counts with all its text; a ``<div>`` only with its own text (as readability treats a div
    holding bare text as a paragraph), so a wrapper is never taken for its whole content.
    """
    tree.strip_tags(["script", "style", "noscript", "template", "svg"])  # their text is no prose
    for node in _in_content_first(tree, "p, div"):
        if node.tag == "div":
            text = " ".join(node.text(deep=False).split())
        else:
            text = " ".join(node.text(separator=" ").split())
        if len(text) < _MIN_PARAGRAPH or len(text.split()) < _MIN_WORDS or _BYLINE.match(text):
            continue
        if not _skipped(node):
            return text
    return None


def first_image(tree: LexborHTMLParser, base: str) -> tuple[str, int | None, int | None] | None:
    """The first content image as (absolute URL, declared width, declared height), or None."""
    for node in _in_content_first(tree, "img"):
        attrs = node.attributes
        width, height = pixels(attrs.get("width")), pixels(attrs.get("height"))
        if (width is not None and width < MIN_IMAGE_PX) or (height is not None and height <= 10):
            continue
        url = _source(attrs, base)
        if url is None or _NOT_CONTENT_IMAGE.search(urlsplit(url).path) or _skipped(node):
            continue
        if urlsplit(url).path.lower().endswith((".svg", ".ico")):
            continue
        return url, width, height
    return None


def _in_content_first(tree: LexborHTMLParser, tag: str) -> Iterator[LexborNode]:
    seen: set[int] = set()
    for container in tree.css(_CONTENT):
        for node in container.css(tag):
            if node.mem_id not in seen:
                seen.add(node.mem_id)
                yield node
    for node in tree.css(tag):
        if node.mem_id not in seen:
            yield node


def _skipped(node: LexborNode) -> bool:
    """Whether the node sits in navigation, a banner, a byline or the like (itself or an ancestor).

    Element names count at any depth; class/id/role words only on the node and its nearest ancestors,
    since outer wrappers carry layout words (``has-sidebar``) that say nothing about the text.
    """
    current: LexborNode | None = node
    level = 0
    while current is not None and current.tag not in ("body", "html", None):
        if current.tag in _SKIP_TAGS:
            return True
        if current.attributes.get("aria-hidden") == "true" or "hidden" in current.attributes:
            return True  # not shown to readers
        if level < _WORD_LEVELS:
            attrs = current.attributes
            words = " ".join(
                token
                for name in ("class", "id", "role")
                for token in (attrs.get(name) or "").split()
                if not token.lower().startswith(("has-", "with-", "no-", "is-"))
            )
            if words and _SKIP_WORDS.search(words):
                return True
        current = current.parent
        level += 1
    return False


def _source(attrs: dict[str, str | None], base: str) -> str | None:
    """The image's real source: ``src``, unless it is a lazy-load placeholder and a ``data-src`` holds it."""
    candidates = [attrs.get(name) for name in _LAZY_SOURCES] + [attrs.get("src")]
    srcset = attrs.get("srcset") or attrs.get("data-srcset")
    if srcset:
        candidates.append(srcset.split(",")[0].strip().split(" ")[0])
    for value in candidates:
        value = (value or "").strip()
        if not value or value.startswith("data:"):
            continue
        try:
            url = urljoin(base, value)
        except ValueError:
            continue
        if url.startswith(("http://", "https://")):
            return url
    return None
