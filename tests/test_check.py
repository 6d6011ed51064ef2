"""The checker against real servers on loopback: outcomes, HEAD/GET, redirects, retries, limits, guard."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
from pathlib import Path
from typing import Any

from localsite import Hit, LocalSite, closed_port, make_settings

from pipeline.check import check_links_sync
from pipeline.check.http import AddressGuard
from pipeline.check.retry import outcome_for_status, parse_retry_after
from pipeline.config import Settings
from pipeline.health.verdict import detect_outage
from pipeline.links import normalize_url
from pipeline.models import Observation, Outcome, host_key
from pipeline.runreport import HostStats


def one(settings: Settings, url: str, **kwargs: Any) -> Observation:
    return check_links_sync([url], settings, **kwargs)[url]


def test_ok_by_head_alone(local_site: LocalSite, test_settings: Settings) -> None:
    """A 200 answer to HEAD is success, and no GET is sent."""
    local_site.route("/a", 200)
    result = one(test_settings, local_site.url("/a"))
    assert (result.outcome, result.http_status) == (Outcome.SUCCESS, 200)
    assert local_site.count("/a", "GET") == 0
    assert result.host == host_key(local_site.url("/a"))


def test_head_405_falls_back_to_get(local_site: LocalSite, test_settings: Settings) -> None:
    """A server that refuses HEAD is judged by its answer to GET."""
    local_site.route("/a", head=405, get=200)
    assert one(test_settings, local_site.url("/a")).outcome is Outcome.SUCCESS
    assert (local_site.count("/a", "HEAD"), local_site.count("/a", "GET")) == (1, 1)


def test_head_403_get_ok_is_success(local_site: LocalSite, test_settings: Settings) -> None:
    """A HEAD refused with 403 but a 200 GET is success, not blocked."""
    local_site.route("/a", head=403, get=200)
    assert one(test_settings, local_site.url("/a")).outcome is Outcome.SUCCESS


def test_404_and_410_are_hard_and_not_retried(local_site: LocalSite, test_settings: Settings) -> None:
    """404 and 410 are hard failures, each asked once by HEAD and once by GET, never retried."""
    local_site.route("/gone", 410)
    local_site.route("/missing", 404)
    found = check_links_sync([local_site.url("/gone"), local_site.url("/missing")], test_settings)
    assert [o.outcome for o in found.values()] == [Outcome.HARD, Outcome.HARD]
    assert local_site.count("/missing", "GET") == 1
    assert not found[local_site.url("/missing")].network_level


def test_blocking_answers_are_blocked(local_site: LocalSite, test_settings: Settings) -> None:
    """401, 403, 999 and a Cloudflare challenge (cf-mitigated) are blocked."""
    local_site.route("/401", 401)
    local_site.route("/403", 403)
    local_site.route("/999", 999)
    local_site.route("/cf", 200, headers={"cf-mitigated": "challenge"})
    urls = [local_site.url(p) for p in ("/401", "/403", "/999", "/cf")]
    found = check_links_sync(urls, test_settings)
    assert {url: o.outcome for url, o in found.items()} == dict.fromkeys(urls, Outcome.BLOCKED)


def test_permanent_redirect_is_moved_with_chain(local_site: LocalSite, test_settings: Settings) -> None:
    """A 301 to a live page on another host is 'moved', with the final URL and the hop."""
    target = local_site.url("/new", host_index=1)
    local_site.route("/old", 301, headers={"Location": target})
    local_site.route("/new", 200)
    result = one(test_settings, local_site.url("/old"))
    assert (result.outcome, result.final_url, result.redirects) == (Outcome.MOVED, target, (target,))


def test_temporary_redirect_chain_is_success(local_site: LocalSite, test_settings: Settings) -> None:
    """302 -> 307 -> 200 is plain success, with both hops recorded in order."""
    local_site.route("/a", 302, headers={"Location": "/b"})
    local_site.route("/b", 307, headers={"Location": local_site.url("/c", host_index=2)})
    local_site.route("/c", 200)
    result = one(test_settings, local_site.url("/a"))
    assert result.outcome is Outcome.SUCCESS
    assert result.redirects == (local_site.url("/b"), local_site.url("/c", host_index=2))


def test_redirect_to_404_is_hard(local_site: LocalSite, test_settings: Settings) -> None:
    """A redirect that lands on a 404 is a hard failure that names the redirect."""
    local_site.route("/r", 301, headers={"Location": "/nowhere"})
    local_site.route("/nowhere", 404)
    result = one(test_settings, local_site.url("/r"))
    assert (result.outcome, result.http_status) == (Outcome.HARD, 404)
    assert "redirect to a 404" in result.reason


def test_redirect_loop_is_soft(local_site: LocalSite, test_settings: Settings) -> None:
    """A -> B -> A is a soft failure reported as a loop."""
    local_site.route("/x", 302, headers={"Location": "/y"})
    local_site.route("/y", 302, headers={"Location": "/x"})
    result = one(test_settings, local_site.url("/x"))
    assert result.outcome is Outcome.SOFT
    assert "loop" in result.reason


def test_too_many_redirects_is_soft(local_site: LocalSite, tmp_path: Path) -> None:
    """More hops than http.max_redirects is a soft failure even without a repeated URL."""
    settings = make_settings(tmp_path, http={"max_redirects": 2})
    for i in range(4):
        local_site.route(f"/hop{i}", 302, headers={"Location": f"/hop{i + 1}"})
    local_site.route("/hop4", 200)
    assert one(settings, local_site.url("/hop0")).outcome is Outcome.SOFT
    assert local_site.count("/hop3") == 0


def test_5xx_retried_then_soft(local_site: LocalSite, test_settings: Settings) -> None:
    """A steady 503 is asked retry.attempts times by GET, then reported soft with its code."""
    local_site.route("/down", 503)
    result = one(test_settings, local_site.url("/down"))
    assert (result.outcome, result.http_status) == (Outcome.SOFT, 503)
    assert local_site.count("/down", "GET") == test_settings.retry.attempts


def test_transient_error_then_success(local_site: LocalSite, test_settings: Settings) -> None:
    """A 502 followed by 200 is success after one retry."""
    local_site.route("/flaky", get=[502, 200], head=405)
    assert one(test_settings, local_site.url("/flaky")).outcome is Outcome.SUCCESS
    assert local_site.count("/flaky", "GET") == 2


def test_retry_after_is_honoured(local_site: LocalSite, test_settings: Settings) -> None:
    """After a 429 with Retry-After: 1 the retry comes at least one second later, and succeeds."""
    local_site.route("/limited", [429, 200], headers={"Retry-After": "1"})
    result = one(test_settings, local_site.url("/limited"))
    assert result.outcome is Outcome.SUCCESS
    first, second = [h for h in local_site.hits if h.path == "/limited"]
    assert second.started - first.finished >= 0.95


def test_retry_after_beyond_cap_is_not_waited(local_site: LocalSite, test_settings: Settings) -> None:
    """A Retry-After longer than retry.retry_after_max stops retrying: one request, reported blocked."""
    local_site.route("/later", 429, headers={"Retry-After": "3600"})
    result = one(test_settings, local_site.url("/later"))
    assert (result.outcome, result.http_status) == (Outcome.BLOCKED, 429)
    assert local_site.count("/later") == 1
    assert "Retry-After" in result.reason


def test_timeout_is_soft_network_level_and_retried(local_site: LocalSite, tmp_path: Path) -> None:
    """A server slower than the read timeout gives a soft, network-level failure after every attempt."""
    settings = make_settings(
        tmp_path, http={"read_timeout": 0.2, "total_timeout": 1.0}, retry={"attempts": 2}
    )
    local_site.route("/slow", 200, delay=0.6)
    result = one(settings, local_site.url("/slow"))
    assert (result.outcome, result.network_level) == (Outcome.SOFT, True)
    assert "timed out" in result.reason
    assert local_site.count("/slow") == 2


def test_refused_connection_is_soft_network_level(test_settings: Settings) -> None:
    """Nothing listening: soft, network-level, 'refused'."""
    result = one(test_settings, f"http://127.0.0.20:{closed_port('127.0.0.20')}/")
    assert (result.outcome, result.network_level) == (Outcome.SOFT, True)
    assert "refused" in result.reason


def test_unresolvable_domain_is_hard_network_level(test_settings: Settings) -> None:
    """A name that does not resolve (.invalid never does) is a hard, network-level failure."""
    result = one(test_settings, "http://no-such-host.invalid/")
    assert (result.outcome, result.network_level) == (Outcome.HARD, True)


def test_per_host_concurrency_is_never_exceeded(local_site: LocalSite, tmp_path: Path) -> None:
    """With 3 per host and 12 slow URLs on each of 2 hosts, the servers see at most 3 at once, each."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 3, "max_concurrency": 50})
    local_site.route("/slowish", 200, delay=0.03)
    urls = [local_site.url("/slowish", h) + f"?n={i}" for h in (0, 1) for i in range(12)]
    found = check_links_sync(urls, settings)
    assert all(o.outcome is Outcome.SUCCESS for o in found.values())
    assert local_site.max_inflight[0] == 3
    assert local_site.max_inflight[1] == 3


def test_global_concurrency_is_never_exceeded(local_site: LocalSite, tmp_path: Path) -> None:
    """With a global limit of 2 over 3 hosts, the servers together never see more than 2 at once."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 2, "max_concurrency": 2})
    local_site.route("/g", 200, delay=0.03)
    check_links_sync([local_site.url("/g", h) + f"?n={i}" for h in range(3) for i in range(4)], settings)
    spans = [(h.started, h.finished) for h in local_site.hits if h.path == "/g"]
    peak = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert peak == 2


def test_min_host_interval_spaces_request_starts(local_site: LocalSite, tmp_path: Path) -> None:
    """http.min_host_interval = 0.2 s keeps request starts to one host about 0.2 s apart (unspaced starts
    are milliseconds apart; the margin absorbs the test server's own scheduling delays on a busy machine)."""
    settings = make_settings(tmp_path, http={"min_host_interval": 0.2})
    local_site.route("/i", 200)
    check_links_sync([local_site.url("/i") + f"?n={i}" for i in range(4)], settings)
    starts = sorted(h.started for h in local_site.hits if h.path == "/i")
    assert len(starts) == 4
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(starts))


def test_each_unique_url_requested_once(local_site: LocalSite, test_settings: Settings) -> None:
    """Duplicated input URLs give one observation and one request each; on_result fires once per URL."""
    local_site.route("/u1", 200)
    local_site.route("/u2", 200)
    u1, u2 = local_site.url("/u1"), local_site.url("/u2")
    seen: list[str] = []
    found = check_links_sync([u1, u2, u1, u1, u2], test_settings, on_result=lambda o: seen.append(o.url))
    assert set(found) == {u1, u2}
    assert (local_site.count("/u1"), local_site.count("/u2")) == (1, 1)
    assert sorted(seen) == sorted([u1, u2])


def test_address_guard_refuses_direct_loopback_url(local_site: LocalSite, tmp_path: Path) -> None:
    """With no allowed networks a 127.0.0.x URL is skipped and the server never sees a request."""
    settings = make_settings(tmp_path, http={"allow_networks": []})
    local_site.route("/secret", 200)
    result = one(settings, local_site.url("/secret"))
    assert result.outcome is Outcome.SKIPPED
    assert "loopback" in result.reason
    assert local_site.count("/secret") == 0


def test_address_guard_refuses_redirect_hop(local_site: LocalSite, tmp_path: Path) -> None:
    """A redirect from an allowed address to a refused one is skipped before the hop is requested."""
    settings = make_settings(tmp_path, http={"allow_networks": [f"{local_site.addresses[0]}/32"]})
    local_site.route("/jump", 302, headers={"Location": local_site.url("/inside", host_index=1)})
    local_site.route("/inside", 200)
    result = one(settings, local_site.url("/jump"))
    assert result.outcome is Outcome.SKIPPED
    assert "address guard" in result.reason
    assert local_site.count("/inside") == 0


def test_address_guard_applies_to_resolved_names(local_site: LocalSite, tmp_path: Path) -> None:
    """A redirect to a *name* that resolves to a refused address (localhost) is refused at resolution."""
    settings = make_settings(tmp_path, http={"allow_networks": [f"{local_site.addresses[0]}/32"]})
    local_site.route("/toname", 302, headers={"Location": f"http://localhost:{local_site.ports[0]}/x"})
    result = one(settings, local_site.url("/toname"))
    assert result.outcome is Outcome.SKIPPED
    assert "localhost resolves to 127.0.0.1 is loopback" in result.reason


def test_fetch_body_uses_one_get_and_caps_body(local_site: LocalSite, test_settings: Settings) -> None:
    """A URL whose body is wanted is fetched by a single GET (no HEAD) and cut at the byte cap."""
    body = bytes(range(256)) * 4000
    local_site.route("/big", 200, headers={"Content-Type": "application/octet-stream"}, body=body)
    url = local_site.url("/big")
    result = one(test_settings, url, fetch_body={url: 2_000_000})
    assert result.page is not None
    assert result.page.body == body[: len(result.page.body)]
    assert len(result.page.body) == len(body)
    capped = one(test_settings, url, fetch_body={url: 5000})
    assert capped.page is not None and capped.page.body == body[:5000]
    assert local_site.count("/big", "HEAD") == 0


def test_html_page_read_stops_after_head(local_site: LocalSite, test_settings: Settings) -> None:
    """A page whose head declares its metadata is read up to </head> only; headers come back lower-cased."""
    head = (
        b"<html><head><title>T</title><meta name=description content=d>"
        b"<meta property=og:image content=/i.jpg></HEAD>"
    )
    local_site.route(
        "/page", 200, headers={"Content-Type": "text/html; charset=utf-8"}, body=head + b"x" * 3_000_000
    )
    url = local_site.url("/page")
    result = one(test_settings, url, fetch_body={url: 1_048_576})
    assert result.page is not None
    assert result.page.body.startswith(head)
    assert len(result.page.body) < 1_048_576
    assert result.page.headers["content-type"].startswith("text/html")
    assert result.page.final_url == url


def test_html_page_without_an_image_is_read_past_its_head_within_the_cap(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """A head without a share image lets the body be read (to max_page_bytes); not with from_body off."""
    head = b"<html><head><title>T</title><meta name=description content=d></head>"
    local_site.route(
        "/bare", 200, headers={"Content-Type": "text/html; charset=utf-8"}, body=head + b"x" * 300_000
    )
    url = local_site.url("/bare")
    settings = make_settings(tmp_path)
    result = one(settings, url, fetch_body={url: 200_000})
    assert result.page is not None and len(result.page.body) == 200_000
    off = make_settings(tmp_path, metadata={"excerpt": {"from_body": False}, "images": {"from_body": False}})
    result = one(off, url, fetch_body={url: 200_000})
    assert result.page is not None and len(result.page.body) < 100_000


def test_gzip_bomb_is_cut_at_decompressed_cap(local_site: LocalSite, tmp_path: Path) -> None:
    """A gzip body expanding to 64 MB yields exactly max_decompressed_bytes of zeros."""
    settings = make_settings(tmp_path, http={"max_decompressed_bytes": 100_000})
    bomb = gzip.compress(b"\0" * 64_000_000, compresslevel=9)
    local_site.route(
        "/bomb", 200, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}, body=bomb
    )
    url = local_site.url("/bomb")
    result = one(settings, url, fetch_body={url: 1_000_000})
    assert result.outcome is Outcome.SUCCESS
    assert result.page is not None and result.page.body == b"\0" * 100_000


def test_gzip_body_is_decoded(local_site: LocalSite, test_settings: Settings) -> None:
    """A gzip-encoded page comes back decoded."""
    page = b"<html><head><title>zipped</title></head><body>hi</body></html>"
    local_site.route(
        "/z", 200, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}, body=gzip.compress(page)
    )
    url = local_site.url("/z")
    result = one(test_settings, url, fetch_body={url: 10_000})
    assert result.page is not None and result.page.body.startswith(
        b"<html><head><title>zipped</title></head>"
    )


def test_small_body_request_sends_range(local_site: LocalSite, test_settings: Settings) -> None:
    """A small body (an image probe) is asked for with Range, and a 206 answer is success."""
    local_site.route("/img.png", 206, headers={"Content-Type": "image/png"}, body=b"\x89PNG" + b"\0" * 60)
    url = local_site.url("/img.png")
    result = one(test_settings, url, fetch_body={url: 64})
    assert (result.outcome, result.http_status) == (Outcome.SUCCESS, 206)
    hit = next(h for h in local_site.hits if h.path == "/img.png")
    assert hit.headers.get("Range") == "bytes=0-63"
    assert result.page is not None and result.page.body.startswith(b"\x89PNG")


def test_oversized_headers_are_refused(local_site: LocalSite, tmp_path: Path) -> None:
    """A response header longer than http.max_header_bytes is a failure, not a success."""
    settings = make_settings(tmp_path, http={"max_header_bytes": 1024})
    local_site.route("/fat", 200, headers={"X-Fat": "a" * 4000})
    result = one(settings, local_site.url("/fat"))
    assert result.outcome is Outcome.SOFT
    assert result.http_status is None


def test_user_agent_is_sent(local_site: LocalSite, tmp_path: Path) -> None:
    """The configured User-Agent reaches the server."""
    settings = make_settings(tmp_path, http={"user_agent": "probe/9 (+test)"})
    local_site.route("/ua", 200)
    one(settings, local_site.url("/ua"))
    assert local_site.hits[0].headers["User-Agent"] == "probe/9 (+test)"


def test_tls_site_with_trusted_ca_is_ok(tls_site: LocalSite, test_settings: Settings) -> None:
    """An HTTPS server whose certificate the configured CA signed is checked normally."""
    tls_site.route("/s", 200)
    assert one(test_settings, tls_site.url("/s")).outcome is Outcome.SUCCESS


def test_tls_untrusted_certificate_is_soft_network_level(tls_site: LocalSite, tmp_path: Path) -> None:
    """Without the test CA the certificate fails verification: soft, network-level, named TLS."""
    settings = make_settings(tmp_path, None)
    tls_site.route("/s", 200)
    result = one(settings, tls_site.url("/s"))
    assert (result.outcome, result.network_level) == (Outcome.SOFT, True)
    assert "TLS" in result.reason
    assert tls_site.count("/s") == 0


def test_outage_detected_from_real_failures(local_site: LocalSite, test_settings: Settings) -> None:
    """Four hosts refusing connections and one answering is an outage; two of three is not."""
    local_site.route("/up", 200)
    dead_hosts = [f"http://127.0.0.{20 + i}:{closed_port(f'127.0.0.{20 + i}')}/" for i in range(4)]
    found = check_links_sync([*dead_hosts, local_site.url("/up")], test_settings)
    reason = detect_outage(found, test_settings.health)
    assert reason is not None and "4 of 5 hosts" in reason
    assert (
        detect_outage(
            check_links_sync([*dead_hosts[:2], local_site.url("/up")], test_settings), test_settings.health
        )
        is None
    )


def test_invalid_url_is_skipped_without_request(test_settings: Settings) -> None:
    """A non-http URL is skipped, never requested."""
    found = check_links_sync(["ftp://example.org/file", "mailto:x@example.org"], test_settings)
    assert {o.outcome for o in found.values()} == {Outcome.SKIPPED}


def test_outcome_for_status_table() -> None:
    """Status codes map to outcomes and retry decisions as the issue states."""
    assert outcome_for_status(200) == (Outcome.SUCCESS, False)
    assert outcome_for_status(404) == (Outcome.HARD, False)
    assert outcome_for_status(410) == (Outcome.HARD, False)
    assert outcome_for_status(429) == (Outcome.BLOCKED, True)
    assert outcome_for_status(999) == (Outcome.BLOCKED, False)
    assert outcome_for_status(408) == (Outcome.SOFT, True)
    assert outcome_for_status(500) == (Outcome.SOFT, True)
    assert outcome_for_status(400) == (Outcome.SOFT, False)
    assert outcome_for_status(200, challenged=True) == (Outcome.BLOCKED, False)


def test_parse_retry_after_seconds_and_dates() -> None:
    """Retry-After accepts delta-seconds and HTTP dates; junk is ignored."""
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None  # Latin-1 header bytes can make such "digits"
    assert parse_retry_after(None) is None


def test_keep_pages_false_hands_pages_only_to_the_callback(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """With keep_pages=False the callback sees the page body but the returned observation has none."""
    local_site.route("/kp", 200, headers={"Content-Type": "text/html"}, body=b"<html><head></head></html>")
    url = local_site.url("/kp")
    seen: list[Observation] = []
    found = check_links_sync(
        [url], test_settings, fetch_body={url: 1000}, on_result=seen.append, keep_pages=False
    )
    assert seen[0].page is not None and seen[0].page.body.startswith(b"<html>")
    assert found[url].page is None
    assert found[url].outcome is Outcome.SUCCESS


def _overlap(a: Hit, b: Hit) -> bool:
    return a.started < b.finished and b.started < a.finished


def test_429_pauses_the_whole_host_retries_included(local_site: LocalSite, tmp_path: Path) -> None:
    """After a 429 with Retry-After: 1, no later request to that host (retries included) overlaps another
    or starts before the second has passed."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 3})
    for busy in ("/busy0", "/busy1"):
        local_site.route(busy, [429, 200], headers={"Retry-After": "1"}, delay=0.05)
    local_site.route("/quick", 200, delay=0.1)  # in flight at the 429s, frees its slot soon after
    local_site.route("/calm", 200)
    urls = [local_site.url(p) for p in ("/busy0", "/busy1", "/quick", "/calm")]
    found = check_links_sync(urls, settings)
    assert {o.outcome for o in found.values()} == {Outcome.SUCCESS}
    first_429 = min(h.finished for h in local_site.hits if h.path.startswith("/busy"))
    later = [h for h in local_site.hits if h.started > first_429]
    assert sorted(h.path for h in later) == ["/busy0", "/busy1", "/calm"]
    assert all(h.started >= first_429 + 0.95 for h in later)
    assert not any(_overlap(a, b) for a in local_site.hits for b in later if a is not b)


def test_429_from_redirect_target_slows_that_host(local_site: LocalSite, tmp_path: Path) -> None:
    """A 429 from a redirect target on another host slows that host, not the host that redirected."""
    settings = make_settings(
        tmp_path, http={"per_host_concurrency": 3, "min_host_interval": 0.05}, retry={"attempts": 1}
    )
    local_site.route("/hop", 302, headers={"Location": local_site.url("/limit", host_index=1)})
    local_site.route("/limit", 429, headers={"Retry-After": "0"})
    local_site.route("/s", 200, delay=0.2)
    urls = [local_site.url("/hop")] + [local_site.url("/s", h) + f"?n={n}" for h in (0, 1) for n in range(2)]
    check_links_sync(urls, settings)
    limited = next(h for h in local_site.hits if h.path == "/limit")
    origin, target = ([h for h in local_site.hits if h.path == "/s" and h.host_index == i] for i in (0, 1))
    assert all(max(h.started for h in hits) > limited.finished for hits in (origin, target))
    assert _overlap(*origin)
    assert not _overlap(*target)


def test_304_recheck_downloads_no_body(local_site: LocalSite, test_settings: Settings) -> None:
    """A page asked with its stored ETag answers 304: success, no page, not one body byte sent."""
    body = b"<html><head><title>Story</title></head><body>" + b"x" * 50_000 + b"</body></html>"
    local_site.route("/story", headers={"Content-Type": "text/html"}, body=body, etag='"v1"')
    url = local_site.url("/story")
    stats: dict[str, HostStats] = {}
    obs = check_links_sync(
        [url], test_settings, fetch_body={url: 1 << 20}, validators={url: ('"v1"', None)}, host_stats=stats
    )[url]
    assert (obs.outcome, obs.http_status, obs.page) == (Outcome.SUCCESS, 304, None)
    assert local_site.body_bytes["/story"] == 0
    assert local_site.count("/story") == 1
    assert stats[host_key(url)].not_modified == 1
    hit = next(h for h in local_site.hits if h.path == "/story")
    assert hit.headers.get("If-None-Match") == '"v1"'


def test_changed_page_is_downloaded_despite_validators(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """A stale ETag gets the whole page (200), and If-Modified-Since is sent as stored."""
    local_site.route("/story", headers={"Content-Type": "text/html"}, body=b"<title>New</title>", etag='"v2"')
    url = local_site.url("/story")
    stored = ('"v1"', "Tue, 01 Dec 2026 07:00:00 GMT")
    obs = check_links_sync([url], test_settings, fetch_body={url: 1 << 20}, validators={url: stored})[url]
    assert (obs.outcome, obs.http_status) == (Outcome.SUCCESS, 200)
    assert obs.page is not None and obs.page.body == b"<title>New</title>"
    hit = next(h for h in local_site.hits if h.path == "/story")
    assert hit.headers.get("If-Modified-Since") == stored[1]


def test_unasked_304_is_not_success(local_site: LocalSite, test_settings: Settings) -> None:
    """A 304 to a request that carried no validators is no evidence of life."""
    local_site.route("/odd", 304)
    assert one(test_settings, local_site.url("/odd")).outcome is Outcome.SOFT


def test_host_stats_count_429s_503s_pauses_and_lowest_concurrency(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """One 429 and one 503 from a host of 8 slots: both counted, a pause recorded, concurrency halved."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 8})
    local_site.route("/a", [429, 200], headers={"Retry-After": "0"})
    local_site.route("/b", [503, 200])
    local_site.route("/c", 200)
    urls = [local_site.url(p) for p in ("/a", "/b", "/c")] + [local_site.url("/c", 1)]
    stats: dict[str, HostStats] = {}
    found = check_links_sync(urls, settings, host_stats=stats)
    assert {o.outcome for o in found.values()} == {Outcome.SUCCESS}
    limited, calm = stats[host_key(urls[0])], stats[host_key(urls[3])]
    assert (limited.got_429, limited.got_503) == (1, 1)
    assert limited.pauses >= 1 and limited.paused_seconds > 0
    assert limited.lowest_concurrency <= 4
    assert (calm.got_429, calm.got_503, calm.pauses, calm.lowest_concurrency) == (0, 0, 0, 8)


def test_ratelimit_header_pauses_the_host_until_reset(local_site: LocalSite, tmp_path: Path) -> None:
    """An answer saying RateLimit-Remaining: 0, RateLimit-Reset: 1 holds every later request one second."""
    settings = make_settings(tmp_path, http={"per_host_concurrency": 1})
    local_site.route("/quota", 200, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "1"})
    local_site.route("/next", 200)
    check_links_sync([local_site.url("/quota"), local_site.url("/next")], settings)
    quota = next(h for h in local_site.hits if h.path == "/quota")
    later = next(h for h in local_site.hits if h.path == "/next")
    assert later.started >= quota.finished + 0.95


def test_numeric_ipv4_host_is_judged_as_the_address_it_means(local_site: LocalSite, tmp_path: Path) -> None:
    """http://<2130706442>:port/ is 127.0.0.10: allowed when that address is, refused (skipped) when not."""
    numeric = int(ipaddress.IPv4Address(local_site.addresses[0]))
    local_site.route("/n", 200)
    url, _ = normalize_url(f"http://{numeric}:{local_site.ports[0]}/n")
    assert url == local_site.url("/n")
    allowed = make_settings(tmp_path, http={"allow_networks": [f"{local_site.addresses[0]}/32"]})
    assert one(allowed, url).outcome is Outcome.SUCCESS
    refused = one(make_settings(tmp_path, http={"allow_networks": []}), url)
    assert refused.outcome is Outcome.SKIPPED and "loopback" in refused.reason


def test_guard_reads_numeric_ipv4_hosts_of_redirect_hops() -> None:
    """The guard refuses 2130706433, 0x7f000001 and 127.1 as the loopback address they mean."""
    guard = AddressGuard()
    for host in ("2130706433", "0x7f000001", "127.1", "0"):
        assert guard.refusal(host) is not None
    assert "not a valid IPv4" in (guard.refusal("1.2.3.4.5") or "")


def test_reason_phrase_with_invalid_utf8_keeps_status_and_shows_the_byte(test_settings: Settings) -> None:
    """A status line whose reason phrase is not UTF-8 is judged by its status, the byte shown escaped."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        for _ in range(2):  # HEAD, then the fallback GET
            connection, _address = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 404 Not\xff Found\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = one(test_settings, f"http://127.0.0.1:{port}/gone")
    finally:
        server.close()
    assert (result.outcome, result.http_status) == (Outcome.HARD, 404)
    assert result.reason == "HTTP 404 Not\\xff Found"


def test_observations_kept_share_their_reason_and_final_url(
    local_site: LocalSite, test_settings: Settings
) -> None:
    """Kept observations of equal answers hold one reason string, and the URL itself as final URL."""
    local_site.route("/a", 200)
    local_site.route("/b", 200)
    urls = [local_site.url("/a"), local_site.url("/b")]
    results = check_links_sync(urls, test_settings)
    first, second = (results[url] for url in urls)
    assert first.reason == second.reason and first.reason is second.reason
    assert first.final_url is urls[0] and second.final_url is urls[1]


def test_unkept_observations_reach_only_the_callback(local_site: LocalSite, test_settings: Settings) -> None:
    """With keep_observations=False the callback sees every observation and none is returned."""
    local_site.route("/a", 200)
    seen: list[Observation] = []
    url = local_site.url("/a")
    results = check_links_sync([url], test_settings, on_result=seen.append, keep_observations=False)
    assert results == {} and [obs.url for obs in seen] == [url]
