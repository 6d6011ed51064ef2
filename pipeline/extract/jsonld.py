"""JSON-LD blocks -> what they say about the page's main entity (pure).

Reads: the raw text of a page's ``<script type="application/ld+json">`` blocks, in document order (the HTML
parser leaves them raw, so entities are still escaped; a ``<![CDATA[ … ]]>`` wrapper and a trailing ``;`` are
tolerated). Returns: :class:`LdFacts` (headline, name, description, images, published, publisher, url) of
the main entity: the first article-like node, else the first web page; every field None/empty when there is
none. Broken or absurdly nested JSON is skipped, never raised. Settings: none.

Nodes are found in top-level lists and ``@graph`` alike; a ``{"@id": …}`` reference is replaced by the node
it names. Text is entity-decoded once and whitespace-folded.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pipeline.models import ImageMeta

__all__ = ["LdFacts", "pixels"]

_ARTICLE_TYPES = frozenset(
    {"article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle", "opinionnewsarticle", "report"}
    | {"backgroundnewsarticle", "blogposting", "liveblogposting", "socialmediaposting", "techarticle"}
    | {"scholarlyarticle", "videoobject", "recipe"}
)
_PAGE_TYPES = frozenset({"webpage", "itempage", "collectionpage", "aboutpage", "profilepage"})


@dataclass(frozen=True, slots=True)
class LdFacts:
    """What the page's JSON-LD says about its main entity: an article, else the web page."""

    headline: str | None = None
    name: str | None = None
    description: str | None = None
    images: tuple[ImageMeta, ...] = ()
    published: str | None = None
    publisher: str | None = None
    url: str | None = None

    def title(self, page_title: str | None) -> str | None:
        """Headline or name; when they differ, the one closer to the page's own title (a list page's
        headline can be its kind, such as "Wikimedia list article")."""
        if not (self.headline and self.name and page_title) or self.headline == self.name:
            return self.headline or self.name
        return max((self.headline, self.name), key=lambda text: _similarity(text, page_title))

    @classmethod
    def from_blocks(cls, blocks: list[str]) -> LdFacts:
        """The facts of the main entity across all blocks (``@id`` references resolve across blocks)."""
        nodes: list[dict[str, object]] = []
        for block in blocks:
            try:
                nodes.extend(_ld_nodes(json.loads(_strip_cdata(block), strict=False)))
            except (ValueError, RecursionError):  # broken or absurdly nested JSON-LD is ignored
                continue
        by_id = {node["@id"]: node for node in nodes if isinstance(node.get("@id"), str)}
        articles = [node for node in nodes if _ld_types(node) & _ARTICLE_TYPES]
        pages = [node for node in nodes if _ld_types(node) & _PAGE_TYPES and node not in articles]
        ranked = articles + pages
        if not ranked:
            return cls()

        def first(*keys: str) -> object:
            for node in ranked:
                for key in keys:
                    value = _deref(node.get(key), by_id)
                    if value:
                        return value
            return None

        publisher = first("publisher")
        main = ranked[0]
        return cls(
            headline=_ld_text(main.get("headline")),
            name=_ld_text(main.get("name")),
            description=_ld_text(first("description")),
            images=tuple(_ld_images(first("image", "primaryImageOfPage", "thumbnailUrl"), by_id)),
            published=_ld_text(first("datePublished", "uploadDate")),
            publisher=_ld_text(publisher.get("name")) if isinstance(publisher, dict) else None,
            url=_ld_text(main.get("url")),
        )


def pixels(value: object) -> int | None:
    """A declared image size (a JSON number, ``"640"`` or ``"640px"``), or None when absent or absurd."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e6:
        return int(value)
    text = value.strip().removesuffix("px") if isinstance(value, str) else ""
    if 0 < len(text) <= 6 and text.isascii() and text.isdigit():  # "²" is a digit to Python, not to int()
        return int(text)
    return None


def _strip_cdata(block: str) -> str:
    """JSON-LD wrapped in ``<![CDATA[ … ]]>`` (XHTML habits, often behind ``//``) and ended by ``;``."""
    text = block.strip()
    if text.startswith(("<![CDATA[", "//")):
        text = text.removeprefix("//").lstrip().removeprefix("<![CDATA[")
        text = text.rstrip().removesuffix("]]>").rstrip().removesuffix("//")
    return text.strip().rstrip(";")


def _ld_nodes(data: object) -> Iterator[dict[str, object]]:
    if isinstance(data, list):
        for item in data:
            yield from _ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        yield from _ld_nodes(data.get("@graph"))


def _ld_types(node: dict[str, object]) -> set[str]:
    kinds = node.get("@type")
    return {kind.lower() for kind in (kinds if isinstance(kinds, list) else [kinds]) if isinstance(kind, str)}


def _deref(value: object, by_id: Mapping[object, dict[str, object]]) -> object:
    """A ``{"@id": …}`` reference replaced by the node it names (Yoast and others link their @graph)."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("@id"), str):
        return by_id.get(value["@id"], value)
    return value


def _ld_text(value: object) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    # JSON-LD sits in a <script>, which the parser leaves raw; sites escape entities in it anyway.
    return " ".join(html.unescape(value).split()) or None


def _ld_images(value: object, by_id: Mapping[object, dict[str, object]]) -> Iterator[ImageMeta]:
    for item in value if isinstance(value, list) else [value]:
        item = _deref(item, by_id)
        if isinstance(item, str):
            yield ImageMeta(url=item)
        elif isinstance(item, dict):
            url = item.get("url") or item.get("contentUrl")
            if isinstance(url, str):
                yield ImageMeta(
                    url=url,
                    width=pixels(item.get("width")),
                    height=pixels(item.get("height")),
                    alt=_ld_text(item.get("caption")),
                    type=_ld_text(item.get("encodingFormat")),
                )


def _similarity(text: str, other: str) -> float:
    words, others = set(re.findall(r"\w+", text.lower())), set(re.findall(r"\w+", other.lower()))
    return len(words & others) / len(words | others) if words | others else 0.0
