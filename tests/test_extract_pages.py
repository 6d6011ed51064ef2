"""Which redirected pages may supply metadata (pure decisions on URL pairs), and where pages are parsed."""

from __future__ import annotations

import threading

import pytest

from pipeline.console import Progress
from pipeline.extract import pages as digest
from pipeline.extract.html import scrape
from pipeline.extract.pages import PageReader, SharedPages, landing_page
from pipeline.models import FetchedPage, ImageMeta, ImageProbe, Observation, Outcome, PageMeta


@pytest.mark.parametrize(
    ("asked", "landed"),
    [
        ("http://news.example/a", "https://news.example/a"),
        ("https://news.example/a", "https://news.example/a/"),
        ("https://news.example/amp/a", "https://news.example/a"),
        ("https://news.example/p/123", "https://news.example/2024/05/authentic-sourdough"),
        ("https://news.example/p/9", "https://news.example/news/new-login-rules-for-banks"),
        ("https://news.example/a", "https://news.example/author/ann"),
    ],
)
def test_ordinary_redirects_keep_their_metadata(asked: str, landed: str) -> None:
    """Scheme, slash and moved-article redirects are the article itself, even with 'login' in a slug."""
    assert landing_page(asked, landed) is None


@pytest.mark.parametrize(
    ("asked", "landed", "reason"),
    [
        ("https://news.example/story", "https://news.example/", "front page"),
        ("https://news.example/story", "https://news.example/login?next=/story", "login or consent"),
        ("https://news.example/story", "https://id.example/auth/realms/x", "login or consent"),
        ("https://news.example/story", "https://news.example/consent.html", "login or consent"),
    ],
)
def test_front_pages_and_walls_are_refused(asked: str, landed: str, reason: str) -> None:
    """A removed story sent to the home page, or a login/consent wall, never supplies metadata."""
    refused = landing_page(asked, landed)
    assert refused is not None and reason in refused


def test_pages_are_parsed_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker's thread only hands a page over; parsing happens beside it, complete after drain()."""
    url = "https://news.example/a"
    threads: list[threading.Thread] = []

    def spying(body: bytes, final_url: str, headers: dict[str, str]) -> PageMeta:
        threads.append(threading.current_thread())
        return scrape(body, final_url, headers)

    monkeypatch.setattr(digest, "scrape", spying)
    body = b"<html><head><meta property='og:description' content='Told'></head></html>"
    page = FetchedPage(url, url, "text/html", {"etag": '"v1"'}, body)
    with PageReader({url}, set(), Progress(quiet=True)) as reader:
        reader(Observation(url, Outcome.SUCCESS, 200, url, page=page))
        reader.drain()

    assert threads and threads[0] is not threading.current_thread()
    assert reader.pages[url].description == "Told"
    assert reader.validators[url] == ('"v1"', None)


def test_an_image_answered_without_its_bytes_is_not_measured() -> None:
    """A HEAD-only answer (a baseline check) is no probe: it must not mark an image as not an image."""
    url = "https://img.example/a.png"
    with PageReader(set(), {url}, Progress(quiet=True)) as reader:
        reader(Observation(url, Outcome.SUCCESS, 200, url))
        reader.drain()

    assert reader.probes == {}


def test_pages_are_kept_with_what_the_run_reads_of_them() -> None:
    """A page is kept with its share image (no alt or type), no site name or date, its sources map shared."""
    shared = SharedPages()
    url = "https://news.example/a"
    images = (
        ImageMeta("https://news.example/i.png", 800, 600, "alt", "image/png"),
        ImageMeta("https://x/2.png"),
    )
    meta = PageMeta(
        url[:-1] + "a",  # an equal string, not the same object
        title="T",
        description="D",
        images=images,
        canonical=url,
        site_name="News",
        published="2024-01-01",
        sources={"description": "og", "image": "og"},
    )
    other = PageMeta(url + "/b", description="E", sources={"description": "og", "image": "og"})

    kept, kept_other = shared.kept(url, meta), shared.kept(url + "/b", other)

    assert kept == PageMeta(
        url,
        title="T",
        description="D",
        images=(ImageMeta("https://news.example/i.png", 800, 600),),
        canonical=url,
        sources={"description": "og", "image": "og"},
    )
    assert kept.url is url and kept.sources is kept_other.sources


def test_probes_share_their_content_type_and_reason() -> None:
    """Probes of many images keep one string per content type and reason, the probes otherwise equal."""
    shared = SharedPages()
    first = ImageProbe("https://i/1.png", True, "".join(["image/", "png"]), 640, 360)
    second = ImageProbe(
        "https://i/2.png", False, "".join(["image/", "png"]), reason="".join(["not an ", "image"])
    )
    third = ImageProbe("https://i/3.png", False, "image/png", reason="not an image")

    kept = [shared.probe(probe) for probe in (first, second, third)]

    assert kept == [first, second, third]
    assert kept[0].content_type is kept[1].content_type is kept[2].content_type
    assert kept[1].reason is kept[2].reason


def test_a_page_that_cannot_supply_metadata_is_not_handed_to_the_parser() -> None:
    """A body that is not HTML, or a failed page, stays on the checker's thread; an HTML page goes over."""
    url = "https://news.example/a"
    plain = FetchedPage(url, url, "text/plain", {}, b"ok")
    html = FetchedPage(url, url, "text/html; charset=utf-8", {}, b"<html><title>T</title></html>")
    with PageReader({url}, set(), Progress(quiet=True)) as reader:
        reader(Observation(url, Outcome.SUCCESS, 200, url, page=plain))
        reader(Observation(url, Outcome.SOFT, 500, url, page=html))
        assert reader._pending == []
        reader(Observation(url, Outcome.SUCCESS, 200, url, page=html))
        assert len(reader._pending) == 1
        reader.drain()
    assert url in reader.pages and not reader.refused


def test_page_table_gives_back_equal_pages() -> None:
    """Pages packed in a PageTable read back equal, with their final URL, share image and sources."""
    table = digest.PageTable()
    sources = {"title": "og", "description": "twitter"}
    plain = PageMeta(
        "https://news.example/a",
        title="Ünïcode title",
        description="",
        images=(ImageMeta("https://cdn.example/a.png", 640, None),),
        sources=sources,
    )
    moved = PageMeta("https://news.example/b/", canonical="https://news.example/b/", sources=dict(sources))
    odd = PageMeta("https://news.example/c", title="a\x00b", images=(ImageMeta("x"), ImageMeta("y")))
    table["https://news.example/a"] = plain
    table["https://news.example/b"] = moved
    table["https://news.example/c"] = odd

    assert dict(table) == {
        "https://news.example/a": plain,
        "https://news.example/b": moved,
        "https://news.example/c": odd,
    }
    assert table["https://news.example/b"].sources is table["https://news.example/a"].sources
    del table["https://news.example/a"]
    assert "https://news.example/a" not in table and len(table) == 2


def test_probe_table_gives_back_equal_probes() -> None:
    """Probes packed in a ProbeTable read back equal: alive or not, sized or not, odd ones kept whole."""
    table = digest.ProbeTable()
    probes = {
        "https://cdn.example/a.png": ImageProbe("https://cdn.example/a.png", True, "image/png", 640, 0),
        "https://cdn.example/b.png": ImageProbe(
            "https://cdn.example/b.png", False, None, None, None, "HTTP 404"
        ),
        "https://cdn.example/c.png": ImageProbe("https://cdn.example/c.png", True, "image/png", 2**50, 3),
        "https://cdn.example/d.png": ImageProbe("https://cdn.example/D.png", True),
    }
    for url, probe in probes.items():
        table[url] = probe

    assert dict(table) == probes
    assert table.pop("https://cdn.example/a.png") == probes["https://cdn.example/a.png"]
    assert len(table) == 3 and "https://cdn.example/a.png" not in table
