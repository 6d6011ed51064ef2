"""Body fallbacks through scrape: first real paragraph and content image, only when none is declared."""

from __future__ import annotations

from pipeline.extract.html import scrape

URL = "https://news.example/2024/05/story.html"
PROSE = "The council voted on Tuesday to close the old bridge for two years of repairs, officials said."


def _page(head: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>".encode()
    )


def test_first_substantial_paragraph_fills_a_missing_description() -> None:
    """Navigation, a cookie banner, a byline and short lines are skipped; the first prose is used."""
    body = (
        "<nav><p>Home News Sport Weather and a great many other sections of this site for you</p></nav>"
        "<div class='cookie-banner'><p>We use cookies to improve your experience on our site; accept them"
        " all or choose which ones you allow in the settings.</p></div>"
        "<p class='byline'>By Ann Writer, Senior correspondent for the city desk, in London on Monday</p>"
        "<p>Short line.</p>"
        f"<article><p>{PROSE}</p>"
        "<p>Second paragraph of the story that is long enough too, really.</p></article>"
    )
    meta = scrape(_page("<title>T</title>", body), URL)

    assert (meta.description, meta.sources["description"]) == (PROSE, "body")


def test_a_declared_description_always_wins_over_the_body() -> None:
    """The body is a last resort: a declared meta description is kept."""
    meta = scrape(_page('<meta name="description" content="Declared text">', f"<p>{PROSE}</p>"), URL)

    assert (meta.description, meta.sources["description"]) == ("Declared text", "meta")


def test_first_content_image_fills_a_missing_share_image() -> None:
    """Logos, icons, avatars, sprites, pixels, narrow images are skipped; a lazy-load source is followed."""
    body = (
        "<header><img src='/brand.jpg' width=600></header>"
        "<img src='/img/logo.png' width=400><img src='/i/avatar-ann.jpg'><img src='/sprite.png'>"
        "<img src='/t/pixel.gif' width=1 height=1><img src='/thumb.jpg' width=120>"
        "<img src='data:image/gif;base64,R0lGOD' data-src='/photos/bridge.jpg' width=800 height=450>"
        "<img src='/photos/second.jpg'>"
    )
    meta = scrape(_page("<title>T</title>", body), URL)

    assert meta.sources["image"] == "body"
    assert (meta.images[0].url, meta.images[0].width) == ("https://news.example/photos/bridge.jpg", 800)


def test_a_declared_share_image_always_wins_over_the_body() -> None:
    """og:image is kept even when the body has a large picture."""
    meta = scrape(
        _page('<meta property="og:image" content="/share.jpg">', "<img src='/photos/big.jpg' width=900>"), URL
    )

    assert (meta.images[0].url, meta.sources["image"]) == ("https://news.example/share.jpg", "og")


def test_a_body_without_prose_or_pictures_supplies_nothing() -> None:
    """No substantial paragraph and only icons: description and image stay empty."""
    meta = scrape(_page("<title>T</title>", "<p>Hi.</p><img src='/favicon.ico'>"), URL)

    assert meta.description is None and meta.images == ()


def test_bare_text_in_a_div_counts_as_a_paragraph_but_hidden_and_script_text_does_not() -> None:
    """A div's own text is prose (not a wrapper's whole content); aria-hidden and script text are skipped."""
    body = (
        f"<p aria-hidden='true'>{PROSE} (hidden)</p>"
        "<p><script>var google_ad_client = 'pub-1'; var google_ad_width = 120; var x = 'padding text';"
        " var y = 'more padding to pass the length bound easily';</script>Short.</p>"
        f"<div class='story'><h1>Title</h1>\n  {PROSE}\n  <p>Later.</p></div>"
    )
    meta = scrape(_page("<title>T</title>", body), URL)

    assert meta.description == PROSE
