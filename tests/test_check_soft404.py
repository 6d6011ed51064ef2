"""Soft-404 verdicts: missing-page titles, redirects to the front page, the random-URL probe."""

from __future__ import annotations

from pathlib import Path

from localsite import LocalSite, make_settings

from pipeline.check import check_links_sync
from pipeline.check.soft404 import Fingerprint, fingerprint, judge, redirected_to_root, same_page
from pipeline.config import Settings
from pipeline.models import FetchedPage, Observation, Outcome

HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE_BYTES = 1024 * 1024


def page(title: str, filler: str = "") -> bytes:
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        f'<meta name="description" content="{filler}"></head><body>text</body></html>'
    ).encode()


def pages(settings: Settings, *urls: str) -> dict[str, Observation]:
    return check_links_sync(urls, settings, fetch_body=dict.fromkeys(urls, PAGE_BYTES))


def test_redirected_to_root_needs_a_deep_url_on_the_same_site() -> None:
    """Only a deep URL that ends on its own site's front page counts; index pages and other sites do not."""
    assert redirected_to_root("https://ex.com/news/gone", "https://www.ex.com/")
    assert not redirected_to_root("https://ex.com/index.html", "https://ex.com/")
    assert not redirected_to_root("https://ex.com/", "https://ex.com/")
    assert not redirected_to_root("https://sho.rt/abc", "https://ex.com/")  # a short link to a home page
    assert not redirected_to_root("https://ex.com/a", "https://ex.com/?lang=en")
    assert not redirected_to_root("https://ex.com/a", "https://ex.com/b")


def test_same_page_by_final_url_or_title_and_size() -> None:
    """A page matches the probe when both were sent to one place, or share a title and nearly a size."""
    probe = Fingerprint("https://ex.com/zz", "https://ex.com/search", "Search", 1000)
    assert same_page(Fingerprint("https://ex.com/a", "https://ex.com/search", "Other", 10), probe)
    assert same_page(Fingerprint("https://ex.com/a", "https://ex.com/a", "Search", 1050), probe)
    assert not same_page(Fingerprint("https://ex.com/a", "https://ex.com/a", "Search", 2000), probe)
    assert not same_page(Fingerprint("https://ex.com/a", "https://ex.com/a", "A story", 1000), probe)
    # The probe redirected to the front page; the front page itself, asked directly, is not its copy.
    home = Fingerprint("https://ex.com/zz", "https://ex.com/", "Home", 1000)
    assert not same_page(Fingerprint("https://ex.com/", "https://ex.com/", "Home 2", 10), home)


def test_a_failure_is_never_rewritten() -> None:
    """A failing observation stays as it is, whatever the probe says."""
    obs = Observation("https://ex.com/a", Outcome.SOFT, http_status=503)
    assert judge(obs, Fingerprint("u", "u", "t", 1)) is obs


def test_fingerprint_reads_title_and_content_length() -> None:
    """The fingerprint takes the <title> text (entities decoded) and Content-Length over the bytes read."""
    fetched = FetchedPage(
        "https://ex.com/a", "https://ex.com/a", "text/html", {"content-length": "5000"}, page("A &amp; B")
    )
    assert fingerprint(fetched, "https://ex.com/a") == Fingerprint(
        "https://ex.com/a", "https://ex.com/a", "A & B", 5000
    )


def test_title_saying_missing_is_a_hard_soft_404(local_site: LocalSite, test_settings: Settings) -> None:
    """A 200 page titled "Page not found | Site" is a hard failure "soft 404"."""
    local_site.route("/gone", body=page("Page not found | Daily News"), headers=HTML)
    local_site.route("/fine", body=page("Council approves the park | Daily News"), headers=HTML)
    found = pages(test_settings, local_site.url("/gone"), local_site.url("/fine"))
    gone, fine = found[local_site.url("/gone")], found[local_site.url("/fine")]
    assert (gone.outcome, gone.http_status) == (Outcome.HARD, 200)
    assert gone.reason.startswith("soft 404") and "title" in gone.reason
    assert fine.outcome is Outcome.SUCCESS


def test_deep_url_redirected_to_the_front_page_is_a_soft_404(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A removed story redirected to the home page is a hard "soft 404"; so is a HEAD-only link."""
    local_site.route("/", body=page("Daily News"), headers=HTML)
    local_site.route("/2024/old-story", 302, headers={"Location": "/"})
    url = local_site.url("/2024/old-story")
    obs = pages(test_settings, url)[url]
    assert obs.outcome is Outcome.HARD and "front page" in obs.reason
    head_only = check_links_sync([url], test_settings)[url]
    assert head_only.outcome is Outcome.HARD


def test_probe_finds_pages_identical_to_a_missing_url(local_site: LocalSite, test_settings: Settings) -> None:
    """On a site answering every unknown URL with one 200 page, an article that is that page is a soft 404,
    a real article is not, and the probe is a single extra request to the host."""
    local_site.fallback(200, headers=HTML, body=page("Daily News", "We could not locate that"))
    local_site.route("/real-story", body=page("Council approves the park | Daily News"), headers=HTML)
    dead, real = local_site.url("/deleted-story"), local_site.url("/real-story")
    found = pages(test_settings, dead, real)
    assert found[dead].outcome is Outcome.HARD and "cannot exist" in found[dead].reason
    assert found[real].outcome is Outcome.SUCCESS
    assert set(found) == {dead, real}  # the probe is not a result
    probes = [h for h in local_site.hits if h.path not in ("/deleted-story", "/real-story")]
    assert len(probes) == 1 and probes[0].method == "GET"


def test_probe_by_redirect_target(local_site: LocalSite, test_settings: Settings) -> None:
    """A site sending unknown URLs to one "not found" page makes an article sent there a soft 404."""
    local_site.route("/oops", body=page("Daily News"), headers=HTML)
    local_site.fallback(302, headers={"Location": "/oops"})
    local_site.route("/real-story", body=page("The park | Daily News"), headers=HTML)
    dead, real = local_site.url("/a/deleted"), local_site.url("/real-story")
    found = pages(test_settings, dead, real)
    assert found[dead].outcome is Outcome.HARD
    assert found[real].outcome is Outcome.SUCCESS


def test_healthy_site_with_a_custom_404_page(local_site: LocalSite, test_settings: Settings) -> None:
    """A site whose missing URLs answer 404 with a branded page: articles ok, a missing one a plain 404."""
    local_site.fallback(404, headers=HTML, body=page("Daily News", "Sorry, that page has gone"))
    urls = [local_site.url(f"/story-{n}") for n in range(5)]
    for n in range(5):
        local_site.route(f"/story-{n}", body=page(f"Story number {n} | Daily News", "x" * n), headers=HTML)
    missing = local_site.url("/no-such-story")
    found = pages(test_settings, *urls, missing)
    assert [found[u].outcome for u in urls] == [Outcome.SUCCESS] * 5
    assert (found[missing].outcome, found[missing].http_status) == (Outcome.HARD, 404)
    assert not found[missing].reason.startswith("soft 404")


def test_healthy_pages_sharing_a_template_are_not_soft_404s(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """Pages of one template with their own titles are ok even when the probe answers 200."""
    local_site.fallback(200, headers=HTML, body=page("Daily News"))
    urls = [local_site.url(f"/s/{n}") for n in range(6)]
    for n in range(6):
        local_site.route(f"/s/{n}", body=page(f"Story {n} | Daily News"), headers=HTML)
    found = pages(test_settings, *urls)
    assert {found[u].outcome for u in urls} == {Outcome.SUCCESS}


def test_probe_obeys_the_host_limit_and_can_be_turned_off(local_site: LocalSite, tmp_path: Path) -> None:
    """With one slot per host the probe never overlaps a page request; soft404_probe: false sends none."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 1})
    local_site.route("/p", body=page("A page"), headers=HTML, delay=0.02)
    urls = [local_site.url("/p") + f"?n={n}" for n in range(4)]
    pages(settings, *urls)
    assert local_site.max_inflight[0] == 1
    assert len(local_site.hits) == 5
    local_site.reset()
    local_site.route("/p", body=page("A page"), headers=HTML)
    off = make_settings(tmp_path, http={"soft404_probe": False})
    pages(off, *urls)
    assert len(local_site.hits) == 4


def test_link_checked_by_head_sent_where_missing_urls_go(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A link checked by HEAD and redirected to the host's "not found" page is a soft 404."""
    local_site.route("/oops", body=page("Daily News"), headers=HTML)
    local_site.fallback(302, headers={"Location": "/oops"})
    local_site.route("/real-story", body=page("The park | Daily News"), headers=HTML)
    amp = local_site.url("/amp/deleted")
    found = check_links_sync([amp], test_settings, fetch_body={local_site.url("/real-story"): PAGE_BYTES})
    assert found[amp].outcome is Outcome.HARD and "cannot exist" in found[amp].reason
    assert found[local_site.url("/real-story")].outcome is Outcome.SUCCESS


def test_single_page_app_shell_on_every_url_is_not_a_soft_404(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A host answering every URL (the probe too) with one shell shows no distinct page: its pages stay ok."""
    local_site.fallback(200, headers=HTML, body=page("My App", "shell"))
    urls = [local_site.url(f"/articles/{n}") for n in range(5)]
    found = pages(test_settings, *urls)
    assert [found[u].outcome for u in urls] == [Outcome.SUCCESS] * 5


def test_shell_match_counts_once_the_host_shows_a_distinct_page(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A page like the probe's answer is a soft 404 when another page of the host is distinct."""
    local_site.fallback(200, headers=HTML, body=page("Daily News", "We could not locate that"))
    local_site.route("/z-real", body=page("Council approves the park | Daily News"), headers=HTML, delay=0.3)
    dead = [local_site.url(f"/a-gone-{n}") for n in range(3)]
    real = local_site.url("/z-real")
    found = pages(test_settings, *dead, real)
    assert [found[u].outcome for u in dead] == [Outcome.HARD] * 3
    assert found[real].outcome is Outcome.SUCCESS


def test_front_page_is_not_the_copy_of_a_probe_sent_to_it(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """Where unknown URLs are redirected to the front page, the front page and real deep pages are ok."""
    local_site.route("/", body=page("Daily News"), headers=HTML)
    local_site.fallback(302, headers={"Location": "/"})
    local_site.route("/2024/story", body=page("The park | Daily News"), headers=HTML)
    home, story = local_site.url("/"), local_site.url("/2024/story")
    found = pages(test_settings, home, story)
    assert found[home].outcome is Outcome.SUCCESS, found[home].reason
    assert found[story].outcome is Outcome.SUCCESS


def test_custom_not_found_page_answering_200_is_a_soft_404(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A missing page answered 200 with the site's branded "not here" page is a soft 404; real pages ok."""
    local_site.fallback(200, headers=HTML, body=page("Daily News", "Sorry, nothing lives at this address"))
    urls = [local_site.url(f"/story-{n}") for n in range(3)]
    for n in range(3):
        local_site.route(f"/story-{n}", body=page(f"Story {n} | Daily News"), headers=HTML)
    missing = local_site.url("/story-removed")
    found = pages(test_settings, *urls, missing)
    assert [found[u].outcome for u in urls] == [Outcome.SUCCESS] * 3
    assert found[missing].outcome is Outcome.HARD and found[missing].reason.startswith("soft 404")


def test_root_redirect_variants() -> None:
    """/index.html and tracking queries count as the front page; a locale root or a locale query does not."""
    assert redirected_to_root("https://ex.com/news/gone", "https://ex.com/index.html")
    assert redirected_to_root("https://ex.com/news/gone", "https://ex.com/?ref=gone")
    assert redirected_to_root("https://ex.com/news/gone", "https://ex.com/?utm_source=x&ref=y")
    assert not redirected_to_root("https://ex.com/", "https://ex.com/en/")
    assert not redirected_to_root("https://ex.com/news/a", "https://ex.com/en/news/a")
    assert not redirected_to_root("https://ex.com/", "https://ex.com/index.html")
    assert not redirected_to_root("https://ex.com/news/a", "https://ex.com/?q=news")
