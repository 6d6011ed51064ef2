"""Tests for pipeline.extract.html: sources, fallbacks, decoding, URLs, image choice, error pages."""

from __future__ import annotations

import codecs
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.extract.guard import looks_like_error_page
from pipeline.extract.html import scrape
from pipeline.models import PageMeta

URL = "https://news.example/2024/05/story.html"


def page(head: str, body: str = "<p>Text</p>") -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>".encode()
    )


def ld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def image_url(meta: PageMeta) -> str | None:
    return meta.images[0].url if meta.images else None


def test_open_graph_property_supplies_every_field() -> None:
    """Open Graph ``property=`` metas supply title, description, image, canonical and site name."""
    meta = scrape(
        page(
            '<meta property="og:title" content="OG title">'
            '<meta property="og:description" content="OG description">'
            '<meta property="og:image" content="https://cdn.example/photo.jpg">'
            '<meta property="og:url" content="https://news.example/story">'
            '<meta property="og:site_name" content="Example News">'
            '<meta property="article:published_time" content="2024-05-01T10:00:00Z">'
            "<title>Other</title>"
        ),
        URL,
    )

    assert (meta.title, meta.description) == ("OG title", "OG description")
    assert image_url(meta) == "https://cdn.example/photo.jpg"
    assert (meta.canonical, meta.site_name, meta.published) == (
        "https://news.example/story",
        "Example News",
        "2024-05-01T10:00:00Z",
    )
    assert meta.sources["title"] == meta.sources["image"] == "og"


def test_open_graph_name_misuse_is_read() -> None:
    """``<meta name="og:image">`` (a common misuse of ``property=``) still supplies the image."""
    meta = scrape(page('<meta name="og:image" content="https://cdn.example/named.jpg">'), URL)

    assert image_url(meta) == "https://cdn.example/named.jpg"


def test_secure_url_of_the_first_og_image_is_preferred() -> None:
    """An ``og:image:secure_url`` is preferred to the plain URL of the image it belongs to."""
    meta = scrape(
        page(
            '<meta property="og:image" content="http://cdn.example/a.jpg">'
            '<meta property="og:image:secure_url" content="https://cdn.example/a.jpg">'
        ),
        URL,
    )

    assert [image.url for image in meta.images] == ["https://cdn.example/a.jpg", "http://cdn.example/a.jpg"]


def test_small_first_og_image_loses_to_a_later_large_one() -> None:
    """A first og:image declared small (a thumbnail) yields to a later full-size one, keeping its size."""
    meta = scrape(
        page(
            '<meta property="og:image" content="https://cdn.example/thumb.jpg">'
            '<meta property="og:image:width" content="120"><meta property="og:image:height" content="90">'
            '<meta property="og:image" content="http://cdn.example/full.jpg">'
            '<meta property="og:image:secure_url" content="https://cdn.example/full.jpg">'
            '<meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">'
            '<meta property="og:image:alt" content="A harbour">'
        ),
        URL,
    )

    first = meta.images[0]
    assert (first.url, first.width, first.height, first.alt) == (
        "https://cdn.example/full.jpg",
        1200,
        630,
        "A harbour",
    )
    assert meta.images[-1].url == "https://cdn.example/thumb.jpg"


def test_twitter_only_image_and_title() -> None:
    """A page with only a Twitter card gets its image and title from it."""
    meta = scrape(
        page(
            '<meta name="twitter:title" content="Card title">'
            '<meta name="twitter:image:src" content="https://cdn.example/card.png">'
        ),
        URL,
    )

    assert (meta.title, image_url(meta), meta.sources["image"]) == (
        "Card title",
        "https://cdn.example/card.png",
        "twitter",
    )


def test_json_ld_image_object_with_size() -> None:
    """A JSON-LD NewsArticle's ImageObject supplies the image with its declared size."""
    meta = scrape(
        page(
            ld(
                {
                    "@context": "https://schema.org",
                    "@type": "NewsArticle",
                    "headline": "LD headline",
                    "description": "LD description",
                    "datePublished": "2024-05-02",
                    "publisher": {"@type": "Organization", "name": "LD Publisher"},
                    "image": {"@type": "ImageObject", "url": "/img/ld.jpg", "width": 1600, "height": "900"},
                }
            )
        ),
        URL,
    )

    assert (meta.title, meta.description, meta.published, meta.site_name) == (
        "LD headline",
        "LD description",
        "2024-05-02",
        "LD Publisher",
    )
    assert meta.images[0] == meta.images[0].__class__(
        url="https://news.example/img/ld.jpg", width=1600, height=900
    )


def test_json_ld_image_list_of_strings() -> None:
    """A JSON-LD image given as a list of strings yields each image, in order."""
    meta = scrape(
        page(ld({"@type": "Article", "image": ["https://a.example/1.jpg", "https://a.example/2.jpg"]})), URL
    )

    assert [image.url for image in meta.images] == ["https://a.example/1.jpg", "https://a.example/2.jpg"]


def test_json_ld_graph_with_id_references() -> None:
    """An ``@graph`` whose Article points at its image and publisher by ``@id`` is followed."""
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "@id": "https://news.example/#page", "name": "Page name"},
            {
                "@type": "ImageObject",
                "@id": "https://news.example/#img",
                "contentUrl": "https://cdn.example/g.jpg",
            },
            {"@type": "Organization", "@id": "https://news.example/#org", "name": "Graph Org"},
            {
                "@type": ["Article"],
                "headline": "Graph headline",
                "image": {"@id": "https://news.example/#img"},
                "publisher": {"@id": "https://news.example/#org"},
            },
        ],
    }

    meta = scrape(page(ld(graph)), URL)

    assert (meta.title, image_url(meta), meta.site_name) == (
        "Graph headline",
        "https://cdn.example/g.jpg",
        "Graph Org",
    )


def test_json_ld_in_the_body_is_read_when_the_head_lacks_an_image() -> None:
    """JSON-LD placed in the body still supplies what the head does not declare."""
    meta = scrape(
        page("<title>T</title>", body=ld({"@type": "BlogPosting", "image": "https://cdn.example/b.jpg"})), URL
    )

    assert image_url(meta) == "https://cdn.example/b.jpg"


def test_json_ld_headline_or_name_closest_to_the_page_title() -> None:
    """When JSON-LD headline and name differ, the one matching the page's title is used."""
    meta = scrape(
        page(
            "<title>List of films - Wikipedia</title>"
            + ld({"@type": "Article", "name": "List of films", "headline": "Wikimedia list article"})
        ),
        URL,
    )

    assert meta.title == "List of films"


@pytest.mark.parametrize(
    ("markup", "source"),
    [
        ('<meta itemprop="description" content="Microdata description">', "meta"),
        ('<meta http-equiv="description" content="Microdata description">', "meta"),
        ('<meta name="description" content="Microdata description">', "meta"),
    ],
)
def test_description_only_in_itemprop_http_equiv_or_name(markup: str, source: str) -> None:
    """A description declared only by ``itemprop``, ``http-equiv`` or ``name`` is found."""
    meta = scrape(page(markup), URL)

    assert (meta.description, meta.sources["description"]) == ("Microdata description", source)


def test_open_graph_description_beats_a_truncated_meta_description() -> None:
    """The share text (``og:description``) wins over a shorter, cut ``meta name=description``."""
    meta = scrape(
        page(
            '<meta name="description" content="Audit draft court naïve open cloud robot model devel...">'
            '<meta property="og:description" content="Audit draft court naïve open cloud robot model'
            ' development, in full.">'
        ),
        URL,
    )

    assert (meta.description, meta.sources["description"]) == (
        "Audit draft court naïve open cloud robot model development, in full.",
        "og",
    )


@pytest.mark.parametrize(
    ("markup", "expected", "source"),
    [
        (
            '<meta name="twitter:description" content="Card text"><meta name="description" content="Meta">',
            "Card text",
            "twitter",
        ),
        (ld({"@type": "Article", "description": "Linked data text"}), "Linked data text", "json-ld"),
        (
            '<meta name="description" content="Meta text"><meta name="dc.description" content="DC">',
            "Meta text",
            "meta",
        ),
    ],
)
def test_description_order_without_open_graph(markup: str, expected: str, source: str) -> None:
    """Without og:description: Twitter card, then JSON-LD, then meta description, then Dublin Core."""
    meta = scrape(page(markup), URL)

    assert (meta.description, meta.sources["description"]) == (expected, source)


def test_cut_open_graph_text_gives_way_to_the_whole_one() -> None:
    """A chosen text that ends in an ellipsis is replaced by another source holding the same text whole."""
    meta = scrape(
        page(
            '<meta property="og:description" content="The council voted to close the …">'
            '<meta name="description" content="The council voted to close the bridge for repairs.">'
        ),
        URL,
    )

    assert (meta.description, meta.sources["description"]) == (
        "The council voted to close the bridge for repairs.",
        "meta",
    )


def test_cut_text_stays_when_no_source_holds_it_whole() -> None:
    """A cut og:description is kept when the other sources say something else."""
    meta = scrape(
        page(
            '<meta property="og:description" content="Photos show the actress looking stun...">'
            '<meta name="description" content="Breaking news from everywhere">'
        ),
        URL,
    )

    assert meta.description == "Photos show the actress looking stun..."


def test_a_description_that_only_names_the_site_is_skipped() -> None:
    """``og:description`` = the site's name describes nothing; the next source supplies the text."""
    meta = scrape(
        page(
            '<meta property="og:description" content="Example">'
            '<meta property="og:site_name" content="Example">'
            '<meta name="description" content="What the story says.">'
        ),
        URL,
    )

    assert (meta.description, meta.sources["description"]) == ("What the story says.", "meta")


def test_image_src_link_is_the_last_fallback() -> None:
    """``link rel=image_src`` supplies the image when nothing else declares one."""
    meta = scrape(page('<link rel="image_src" href="/share.jpg">'), URL)

    assert (image_url(meta), meta.sources["image"]) == ("https://news.example/share.jpg", "link")


def test_title_element_fallback_drops_the_site_name() -> None:
    """Without metadata the ``<title>`` is used, less a trailing part naming the site."""
    meta = scrape(page("<title>Harbour reopens after storm | Example News</title>"), URL)

    assert (meta.title, meta.sources["title"]) == ("Harbour reopens after storm", "title")


def test_title_element_keeps_parts_that_are_not_the_site() -> None:
    """A ``<title>`` separator that does not name the site is kept."""
    meta = scrape(page("<title>Rust - the language | Tutorials</title>"), URL)

    assert meta.title == "Rust - the language | Tutorials"


def test_iso_8859_1_declared_in_meta() -> None:
    """A page declaring ISO-8859-1 in ``<meta http-equiv>`` is decoded with it."""
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "<title>Caf\u00e9 cr\u00e8me \u2013 menu</title></head></html>"
    ).encode("cp1252")

    assert scrape(body, URL).title == "Café crème – menu"


def test_shift_jis_only_in_the_content_type_header() -> None:
    """A page whose charset appears only in the Content-Type header is decoded with it."""
    body = "<html><head><title>日本語のタイトル</title></head></html>".encode("shift_jis")

    meta = scrape(body, URL, {"content-type": "text/html; charset=Shift_JIS"})

    assert meta.title == "日本語のタイトル"


@pytest.mark.parametrize(("bom", "codec"), [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")])
def test_bom_decides_the_encoding(bom: bytes, codec: str) -> None:
    """A byte-order mark decides the encoding, even against a wrong header."""
    body = bom + "<html><head><title>Ünïcödé</title></head></html>".encode(codec)

    assert scrape(body, URL, {"content-type": "text/html; charset=iso-8859-1"}).title == "Ünïcödé"


def test_undeclared_encoding_is_detected() -> None:
    """A page with no declared charset that is not UTF-8 is decoded by detection."""
    text = "Привет, мир! Это длинный заголовок страницы на русском языке для определения кодировки."
    body = f"<html><head><title>{text}</title></head><body><p>{text * 3}</p></body></html>".encode("cp1251")

    assert scrape(body, URL).title == text


def test_meta_charset_late_in_the_head_is_honoured() -> None:
    """A ``<meta charset>`` past the prescan window (as a browser re-decodes) beats detection."""
    text = "欢迎前来淘宝网实力旺铺，选购正品手机"
    scripts = "<script>var x = 1;</script>" * 400  # pushes the declaration past the first 4 KiB
    body = f"<html><head>{scripts}<meta charset='gbk'><title>{text}</title></head></html>".encode("gbk")

    assert scrape(body, URL).title == text


def test_entities_are_decoded_exactly_once() -> None:
    """``&amp;amp;`` becomes ``&amp;``: entities are decoded once, in metas and in JSON-LD alike."""
    meta = scrape(
        page(
            '<meta property="og:title" content="Fish &amp;amp; chips">'
            '<meta name="description" content="Salt &amp; vinegar">'
            + ld({"@type": "Article", "datePublished": "2024", "publisher": {"name": "A &amp;amp; B"}})
        ),
        URL,
    )

    assert (meta.title, meta.description, meta.site_name) == (
        "Fish &amp; chips",
        "Salt & vinegar",
        "A &amp; B",
    )


def test_whitespace_is_folded() -> None:
    """Runs of whitespace, newlines and no-break spaces fold to single spaces."""
    meta = scrape(page('<meta name="description" content="  Two\n\tlines\u00a0here  ">'), URL)

    assert meta.description == "Two lines here"


def test_relative_and_protocol_relative_urls_are_resolved() -> None:
    """Relative URLs resolve against the final URL; protocol-relative ones take its scheme."""
    meta = scrape(
        page(
            '<meta property="og:image" content="//cdn.example/p.jpg">'
            '<link rel="canonical" href="../canonical.html"><link rel="amphtml" href="amp/story.html">'
        ),
        URL,
    )

    assert image_url(meta) == "https://cdn.example/p.jpg"
    assert meta.canonical == "https://news.example/2024/canonical.html"
    assert meta.amp == "https://news.example/2024/05/amp/story.html"


def test_base_href_changes_the_resolution_base() -> None:
    """``<base href>`` (itself relative to the final URL) is the base for relative URLs."""
    meta = scrape(page('<base href="/static/"><meta property="og:image" content="img/p.jpg">'), URL)

    assert image_url(meta) == "https://news.example/static/img/p.jpg"


@pytest.mark.parametrize(
    "bad",
    [
        '<meta property="og:image" content="https://cdn.example/pixel.gif">',
        '<meta property="og:image" content="https://cdn.example/blank_1x1.gif">',
        '<meta property="og:image" content="https://cdn.example/img/lazy-placeholder.png">',
        '<meta property="og:image" content="data:image/gif;base64,R0lGODlhAQABAAAAACw=">',
        '<meta property="og:image" content="//t.example/p"><meta property="og:image:height" content="1">',
    ],
)
def test_pixels_and_placeholders_are_never_chosen(bad: str) -> None:
    """Tracking pixels, lazy-load placeholders and data: URLs are dropped, the real image kept."""
    meta = scrape(page(bad + '<meta name="twitter:image" content="https://cdn.example/real.jpg">'), URL)

    assert [image.url for image in meta.images] == ["https://cdn.example/real.jpg"]


def test_logo_is_chosen_only_after_a_real_image() -> None:
    """A logo or icon declared first ranks after a real photo declared later."""
    meta = scrape(
        page(
            '<meta property="og:image" content="https://news.example/assets/logo.png">'
            '<meta name="twitter:image" content="https://news.example/favicon.ico">'
            + ld({"@type": "Article", "image": "https://cdn.example/photo-1200x630.jpg"})
        ),
        URL,
    )

    assert [image.url for image in meta.images] == [
        "https://cdn.example/photo-1200x630.jpg",
        "https://news.example/assets/logo.png",
        "https://news.example/favicon.ico",
    ]


def test_a_logo_alone_is_still_reported() -> None:
    """When a page declares only a logo as its share image, that is what it shares."""
    meta = scrape(
        page('<meta property="og:image" content="https://news.example/site-logo-1200x800.jpg">'), URL
    )

    assert image_url(meta) == "https://news.example/site-logo-1200x800.jpg"


def test_empty_page_gives_empty_meta() -> None:
    """A page declaring nothing yields a record with only its URL."""
    assert scrape(b"", URL) == PageMeta(url=URL)


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("Page not found | Example News", "soft 404"),
        ("404 - File or directory not found.", "soft 404"),
        ("Oops! That page can’t be found.", "soft 404"),
        ("Just a moment...", "bot wall"),
        ("Attention Required! | Cloudflare", "bot wall"),
        ("Access denied", "bot wall"),
        ("Are you a robot?", "bot wall"),
        ("Example News - 404", "soft 404"),
        ("Sorry, we couldn't find that page", "soft 404"),
    ],
)
def test_error_pages_are_recognised(title: str, kind: str) -> None:
    """Soft-404 and bot-wall titles are recognised, with a reason naming the title."""
    meta = scrape(page(f'<meta property="og:title" content="Example News"><title>{title}</title>'), URL)

    reason = looks_like_error_page(meta)

    assert reason is not None and kind in reason and title.split()[0] in reason


@pytest.mark.parametrize(
    "title",
    [
        "Harbour reopens after storm",
        "Why 'Not Found' became a meme",
        "The moment we found the wreck",
        "Route 404 reopens after repairs",
        "Error messages in Rust: a guide",
        "Please wait before buying a new phone",
        "Forbidden fruit | Recipes",
    ],
)
def test_ordinary_titles_are_not_error_pages(title: str) -> None:
    """Ordinary article titles are not taken for error pages."""
    assert looks_like_error_page(scrape(page(f"<title>{title}</title>"), URL)) is None


def test_json_ld_of_odd_shapes_is_tolerated() -> None:
    """Broken, nested or oddly typed JSON-LD never raises; the usable parts are still read."""
    blocks = [
        "{not json",
        "[" * 5000 + "]" * 5000,
        json.dumps({"@type": {"x": 1}, "image": 3}),
        json.dumps(
            {"@type": "Article", "headline": ["First", "Second"], "image": {"@id": ["x"]}, "publisher": [1]}
        ),
    ]
    meta = scrape(page("".join(f'<script type="application/ld+json">{b}</script>' for b in blocks)), URL)

    assert meta.title == "First"
    assert meta.images == ()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.text(max_size=300))
def test_scrape_never_raises(noise: bytes, text: str) -> None:
    """Arbitrary bytes, and arbitrary text inside metas, titles and JSON-LD, give a PageMeta, not an error."""
    html_text = (
        f'<html><head><title>{text}</title><meta property="og:image" content="{text}">'
        f'<base href="{text}"><script type="application/ld+json">{text}</script></head></html>'
    )
    for body in (
        noise,
        html_text.encode("utf-8", "surrogatepass"),
        noise + html_text.encode("utf-8", "replace"),
    ):
        assert isinstance(scrape(body, URL, {"content-type": "text/html; charset=" + text[:10]}), PageMeta)


def test_json_ld_in_cdata_with_raw_newlines_is_read() -> None:
    """JSON-LD wrapped in ``//<![CDATA[ … //]]>`` with a raw newline inside a string is still read."""
    block = '//<![CDATA[\n{"@type": "NewsArticle", "description": "Line one\nline two"};\n//]]>'
    meta = scrape(page(f'<script type="application/ld+json">{block}</script>'), URL)

    assert (meta.description, meta.sources["description"]) == ("Line one line two", "json-ld")


def test_secure_url_naming_another_image_after_a_small_first_image() -> None:
    """An ``og:image:secure_url`` naming a different image than the small og:image before it is chosen."""
    meta = scrape(
        page(
            '<meta property="og:image" content="http://news.example/thumb.jpg">'
            '<meta property="og:image:width" content="80"><meta property="og:image:height" content="80">'
            '<meta property="og:image:secure_url" content="https://cdn.example/full/photo.jpg">'
        ),
        URL,
    )

    assert [image.url for image in meta.images] == [
        "https://cdn.example/full/photo.jpg",
        "http://news.example/thumb.jpg",
    ]


def test_microdata_metas_in_the_body_fill_what_the_head_lacks() -> None:
    """``itemprop`` metas and links inside the body supply a description and image the head lacks."""
    body = (
        '<article itemscope itemtype="https://schema.org/NewsArticle">'
        '<meta itemprop="description" content="Body microdata description">'
        '<link itemprop="image" href="/media/lead.jpg"><p>Text</p></article>'
    )

    meta = scrape(page("<title>Only a title</title>", body=body), URL)

    assert (meta.description, image_url(meta)) == (
        "Body microdata description",
        "https://news.example/media/lead.jpg",
    )
    assert meta.sources["image"] == "itemprop"


def test_hostile_markup_never_raises() -> None:
    """Unclosed IPv6 hosts, odd digits and endless numbers in a page give no value, never an exception."""
    head = (
        '<link rel=canonical href="http://[::1"><base href="http://[zz">'
        '<meta property="og:image" content="https://[bad/img.jpg">'
        '<meta property="og:image" content="/ok.jpg"><meta property="og:image:width" content="²">'
        f'<meta property="og:image:height" content="{"9" * 5000}">'
    )
    meta = scrape(page(head), "https://news.example/a")
    assert meta.canonical is None
    assert [(image.url, image.width, image.height) for image in meta.images] == [
        ("https://news.example/ok.jpg", None, None)
    ]


def test_half_an_emoji_from_json_ld_is_replaced() -> None:
    """A lone surrogate escape in JSON-LD becomes U+FFFD, so the text can be written to YAML and JSON."""
    meta = scrape(
        page(
            '<script type="application/ld+json">{"@type": "NewsArticle", "headline": '
            '"Big news \\ud83d"}</script>'
        ),
        "https://news.example/a",
    )
    assert meta.title == "Big news \ufffd"
    assert meta.title.encode("utf-8")


@pytest.mark.parametrize(
    "tail",
    [b'<script type="application/ld+json">x' * 20000, b"<script " * 60000, b"<meta " * 60000],
)
def test_endless_unclosed_tags_in_the_body_are_read_in_one_pass(tail: bytes) -> None:
    """Thousands of unclosed tags after the head are scanned once (this took a minute with a naive regex)."""
    body = b"<html><head><title>Fine</title></head><body>" + tail
    assert scrape(body, "https://news.example/a").title == "Fine"


def test_a_shortened_open_graph_text_gives_way_to_the_same_text_whole() -> None:
    """An og:description closed early by a full stop yields to the text going on; a bare prefix stays."""
    whole = "Hansen alerted Congress in 1988. Now he has a new warning: earth is warming too fast."
    meta = scrape(
        page(
            '<meta property="og:description" '
            'content="Hansen alerted Congress in 1988. Now he has a new warning.">'
            f'<meta name="description" content="{whole}">'
        ),
        URL,
    )
    assert (meta.description, meta.sources["description"]) == (whole, "meta")
    for og, other in [
        ("Hansen alerted Congress in 1988 and warn", "Hansen alerted Congress in 1988 and warned them."),
        ("News.", "News. More."),  # too short to be a statement cut short
        (
            "Better Off Dead, the 1980s classic with John Cusack",
            "Better Off Dead, the 1980s classic with John Cusack FYE",
        ),
    ]:
        kept = scrape(
            page(
                f'<meta property="og:description" content="{og}"><meta name="description" content="{other}">'
            ),
            URL,
        )
        assert kept.sources["description"] == "og", og


def test_a_declared_large_first_og_image_named_logo_is_still_the_share_image() -> None:
    """A first og:image declared 1200x1200 is chosen even when its file name says logo (OGP: first wins)."""
    meta = scrape(
        page(
            '<meta property="og:image" content="https://cdn.example/site-logo.png">'
            '<meta property="og:image:width" content="1200"><meta property="og:image:height" content="1200">'
            '<meta property="og:image" content="https://cdn.example/mark.png">'
            '<meta property="og:image:width" content="1200"><meta property="og:image:height" content="620">'
        ),
        URL,
    )
    assert image_url(meta) == "https://cdn.example/site-logo.png"
    undeclared = scrape(
        page(
            '<meta property="og:image" content="https://cdn.example/site-logo.png">'
            '<meta property="og:image" content="https://cdn.example/photo.jpg">'
        ),
        URL,
    )
    assert image_url(undeclared) == "https://cdn.example/photo.jpg"


@pytest.mark.parametrize(
    "placeholder",
    [
        "undefined",
        "null",
        "None",
        "{{ page.description | default: site.description }}",
        "${description}",
        "<%= article.description %>",
        "%%excerpt%%",
        "[object Object]",
        "description",
    ],
)
def test_a_template_placeholder_description_gives_way_to_the_next_source(placeholder: str) -> None:
    """An og:description that is an unrendered template or a literal null says nothing: meta speaks."""
    meta = scrape(
        page(
            f'<meta property="og:description" content="{placeholder}">'
            '<meta name="description" content="The council voted on Tuesday to close the bridge until May.">'
        ),
        URL,
    )
    assert (meta.description, meta.sources["description"]) == (
        "The council voted on Tuesday to close the bridge until May.",
        "meta",
    )
