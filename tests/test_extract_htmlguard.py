"""Bounds on parser work: deep nesting and tag floods are cut, real pages are left whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.extract import htmlguard
from pipeline.extract.html import scrape
from pipeline.extract.htmlguard import MAX_DEPTH, MAX_TAGS, bounded

CORPORA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"


def test_deep_nesting_is_cut_before_the_tag_that_passes_the_depth() -> None:
    """40,000 nested divs keep only the first MAX_DEPTH levels; the markup before them stays."""
    html = "<html><head><title>T</title></head><body>" + "<div>" * 40_000

    cut = bounded(html)

    assert cut.startswith("<html><head><title>T</title></head><body>")
    assert cut.count("<div>") == MAX_DEPTH


def test_closed_and_implied_elements_do_not_add_depth() -> None:
    """Siblings, void elements, unclosed <p>/<li> and script text never count as nesting."""
    html = "<body>" + "<div><img src=a.png><br></div>" * 5_000 + "<p>x" * 5_000 + "<script>" + "<div>" * 5_000
    html += "</script><ul>" + "<li>y" * 5_000 + "</ul>"

    assert bounded(html) == html


def test_a_flood_of_tags_is_cut() -> None:
    """More than MAX_TAGS tags: the rest is not parsed."""
    html = "<br>" * (MAX_TAGS + 10)
    assert bounded(html).count("<br>") == MAX_TAGS


def test_scrape_parses_only_the_bounded_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrape hands the parser the bounded text of a hostile head, keeping the metadata before the nest."""
    seen: list[int] = []
    real = htmlguard.LexborHTMLParser

    def counting(html: str) -> object:
        seen.append(html.count("<div>"))
        return real(html)

    monkeypatch.setattr(htmlguard, "LexborHTMLParser", counting)
    body = (
        b"<html><head><meta property='og:description' content='Declared before the nest, long enough.'>"
        + b"<div>" * 40_000
        + b"</head><body><p>x</p></body></html>"
    )

    meta = scrape(body, "https://news.example/a")

    assert meta.description == "Declared before the nest, long enough."
    assert seen and max(seen) <= MAX_DEPTH


@pytest.mark.skipif(
    not CORPORA.is_dir() and not os.environ.get("CI"), reason="../shared/corpora is not beside this checkout"
)
def test_no_saved_real_page_is_cut() -> None:
    """None of the 256 saved real pages reaches the bounds: real markup is never truncated."""
    pages = sorted(CORPORA.glob("pages*/*.html"))
    assert len(pages) > 200
    for path in pages:
        text = path.read_bytes().decode("utf-8", "replace")
        assert bounded(text) == text, path.name


def test_raw_text_floods_are_bounded_too() -> None:
    """Many closed scripts count as tags; an unclosed one ends the scan (the rest is text to the parser)."""
    assert bounded("<script></script>" * (MAX_TAGS + 5)).count("<script>") == MAX_TAGS
    unclosed = "<html><body><style>" + "<div>" * 40_000
    assert bounded(unclosed) == unclosed
