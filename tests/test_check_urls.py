"""A URL to request, parsed (pipeline/check/urls.py): the same httpx.URL as httpx makes, or its error."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.check.urls import request_url

_AUTHORITY = st.text(st.sampled_from("aZ09.-_~:@[]%!$&'()*+,;= \u00e9\u0430"), max_size=16)
_REST = st.text(st.sampled_from("/?#aZ09.-_~%:@[]!$&'()*+,;= \u00e9\u0430\u200b\t\"<>\\^`{|}"), max_size=32)


def _same_url(url: str) -> None:
    try:
        whole = httpx.URL(url)
    except httpx.InvalidURL as exc:
        with pytest.raises(httpx.InvalidURL) as raised:
            request_url(url)
        assert str(raised.value) == str(exc)
        return
    fast = request_url(url)
    assert fast._uri_reference == whole._uri_reference
    assert str(fast) == str(whole)
    assert fast.raw_path == whole.raw_path and fast.netloc == whole.netloc


@settings(max_examples=3000)
@given(
    st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    st.sampled_from(["://", ":/", "//"]),
    st.one_of(_AUTHORITY, st.sampled_from(["127.0.0.5:41234", "[::1]:99", "Example.COM:443", "h:99999"])),
    _REST,
)
@example("http", "://", "127.0.0.5:41234", "/page/1234")
@example("https", "://", "Example.COM", "/a/./b/../c?q=1 2&r=%zz#frag%20ment")
@example("http", "://", "h", "?only-a-query")
@example("http", "://", "h", "#")
@example("http", "://", "h", "/%7e/%7E/caf\u00e9")
def test_the_parse_is_httpxs_own(scheme: str, sep: str, authority: str, rest: str) -> None:
    """Every URL parses to the parts httpx.URL makes of it (normalised, quoted alike), or fails as it does."""
    _same_url(scheme + sep + authority + rest)


@pytest.mark.parametrize(
    "url", ["http://h/" + "a" * 9000, "http://h/\u200b", "http://h:99999/x", "http://h/\t"]
)
def test_urls_off_the_fast_path_get_httpxs_own_parse(url: str) -> None:
    """A very long URL, one with an invisible character or a bad port, is parsed (or refused) by httpx."""
    _same_url(url)
