"""Accepted status codes (lychee's range syntax) and per-host overrides, parsed and applied by the check."""

from __future__ import annotations

from pathlib import Path

import pytest
from localsite import LocalSite, make_settings

from pipeline.accept import parse_accept
from pipeline.check import check_links_sync
from pipeline.configfile import parse_settings
from pipeline.errors import ConfigError
from pipeline.models import Outcome


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("200..=204", set(range(200, 205))),
        ("200..205", set(range(200, 205))),
        (["200..=299", 403], set(range(200, 300)) | {403}),
        ("200..=204, 429", set(range(200, 205)) | {429}),
        ("..=103", set(range(100, 104))),
        ("990..", set(range(990, 1000))),
        (403, {403}),
    ],
)
def test_accept_syntax_follows_lychee(value: object, expected: set[int]) -> None:
    """`..` excludes the end, `..=` includes it, open ends reach 100 and 999, lists and strings combine."""
    assert parse_accept(value) == expected


@pytest.mark.parametrize("value", ["200..x", "ok", "300..200", "99", "200..=", "200,,300", True, [1.5]])
def test_malformed_accept_is_refused(value: object) -> None:
    """A malformed code or range raises ValueError instead of accepting something unexpected."""
    with pytest.raises(ValueError, match=r"\S"):
        parse_accept(value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"http": {"accept": "200..x"}}, "http.accept: '200..x' is not a status code or a range"),
        ({"http": {"hosts": {"bad host": {}}}}, "http.hosts: 'bad host' is not a host name"),
        (
            {"http": {"hosts": {"example.com": {"accept": ["300..200"]}}}},
            "http.hosts.example.com.accept: '300..200' is an empty range",
        ),
        (
            {"http": {"hosts": {"example.com": {"acept": [403]}}}},
            "http.hosts.example.com.acept: Extra inputs",
        ),
        (
            {"http": {"hosts": {"example.com": {"headers": {"Bad Name": "x"}}}}},
            "http.hosts.example.com.headers: 'Bad Name' is not a header name",
        ),
        (
            {"http": {"hosts": {"example.com": {"per_host_concurrency": 500}}}},
            "http.hosts.example.com.per_host_concurrency (500) cannot exceed max_concurrency",
        ),
        ({"http": {"contact": "me\nyou"}}, "http.contact:"),
    ],
)
def test_bad_accept_and_host_settings_name_the_dotted_path(data: dict[str, object], message: str) -> None:
    """Malformed ranges, bad host keys and unknown per-host keys are config errors naming the path."""
    with pytest.raises(ConfigError) as excinfo:
        parse_settings(data)
    assert message in str(excinfo.value)


def _host(site: LocalSite, index: int) -> str:
    return f"{site.addresses[index]}:{site.ports[index]}"


def test_accepted_403_is_alive_and_others_stay_blocked(local_site: LocalSite, tmp_path: Path) -> None:
    """With http.accept [200..=299, 403] a 403 is a success; without it a 403 stays blocked."""
    local_site.route("/robots-hater", status=403)
    url = local_site.url("/robots-hater")
    accepting = make_settings(tmp_path, http={"accept": ["200..=299", 403]})
    assert check_links_sync([url], accepting)[url].outcome is Outcome.SUCCESS
    assert check_links_sync([url], make_settings(tmp_path))[url].outcome is Outcome.BLOCKED


def test_per_host_accept_applies_to_that_host_only(local_site: LocalSite, tmp_path: Path) -> None:
    """`http.hosts."host".accept` accepts 403 on that host; the same answer elsewhere is still blocked."""
    local_site.route("/x", status=403)
    first, second = local_site.url("/x", 0), local_site.url("/x", 1)
    settings = make_settings(tmp_path, http={"hosts": {_host(local_site, 0): {"accept": "200..=299, 403"}}})
    found = check_links_sync([first, second], settings)
    assert found[first].outcome is Outcome.SUCCESS
    assert "accepted by http.accept" in found[first].reason
    assert found[second].outcome is Outcome.BLOCKED


def test_a_2xx_outside_accept_fails(local_site: LocalSite, tmp_path: Path) -> None:
    """`accept: [200]` makes a 204 a (soft) failure: the accept set replaces the default 2xx."""
    local_site.route("/empty", status=204)
    url = local_site.url("/empty")
    assert (
        check_links_sync([url], make_settings(tmp_path, http={"accept": [200]}))[url].outcome is Outcome.SOFT
    )


def test_host_headers_go_to_that_host_only(local_site: LocalSite, tmp_path: Path) -> None:
    """A per-host header (a token) is sent to its host, never to the host a redirect leads to."""
    local_site.route("/moved", status=302, headers={"Location": local_site.url("/there", 1)})
    local_site.route("/there", status=200)
    settings = make_settings(
        tmp_path, http={"hosts": {_host(local_site, 0): {"headers": {"X-Token": "s3cret"}}}}
    )
    url = local_site.url("/moved")
    assert check_links_sync([url], settings)[url].outcome is Outcome.SUCCESS
    tokens = {
        (hit.host_index, {k.lower(): v for k, v in hit.headers.items()}.get("x-token"))
        for hit in local_site.hits
    }
    assert (0, "s3cret") in tokens
    assert all(token is None for index, token in tokens if index == 1)


def test_per_host_concurrency_override(local_site: LocalSite, tmp_path: Path) -> None:
    """A host's per_host_concurrency of 1 keeps one request in flight there; others use the default."""
    local_site.route("/slow", status=200, delay=0.15)
    urls = [local_site.url(f"/slow?{i}", 0) for i in range(4)] + [
        local_site.url(f"/slow?{i}", 1) for i in range(4)
    ]
    settings = make_settings(
        tmp_path,
        http={"per_host_concurrency": 4, "hosts": {_host(local_site, 0): {"per_host_concurrency": 1}}},
    )
    check_links_sync(urls, settings)
    assert local_site.max_inflight[0] == 1
    assert local_site.max_inflight[1] > 1


def test_a_host_no_url_uses_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A per-host override that matches no corpus URL (a typo?) is named in a warning; used ones are not."""
    from pipeline.accept import warn_unused_hosts

    settings = parse_settings(
        {"http": {"hosts": {"exmaple.com": {"accept": [403]}, "[::1]:8080": {}, "b.example": {}}}}
    )
    urls = ["http://[::1]:8080/x", "https://b.example/y"]
    assert warn_unused_hosts(settings.http, urls) == ["exmaple.com"]
    assert "http.hosts.exmaple.com: no URL of the corpus" in caplog.text
