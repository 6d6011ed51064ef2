"""The URL a check requests (pipeline/check/urls.py): the same parse as httpx's, made once per origin."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.check.urls import request_url

_AUTHORITY = st.text(st.sampled_from("aZ09.-_~:@[]%!$&'()*+,;= \t\u00e9\u0430"), max_size=16)
_REST = st.text(st.sampled_from("/?#aZ09.-_~%:@[]!$&'()*+,;= \"<>\\^`{|}\u00e9\u0430\x00\n"), max_size=32)


def _same_parse(url: str) -> None:
    try:
        whole = httpx.URL(url)
    except httpx.InvalidURL:
        with pytest.raises(httpx.InvalidURL):
            request_url(url)
        return
    made = request_url(url)
    assert made._uri_reference == whole._uri_reference
    assert str(made) == str(whole) and made.raw_path == whole.raw_path


@settings(max_examples=3000)
@given(
    st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    st.sampled_from(["://", ":", "//"]),
    st.one_of(_AUTHORITY, st.sampled_from(["127.0.0.1:8080", "[::1]:99", "u:p@h:80", "1.2.3.999", "h:x"])),
    _REST,
)
@example("https", "://", "Example.COM:443", "/a/./b/../c?q=%zz&r=\u00e9#f%41")
@example("http", "://", "h", "?only")
@example("http", "://", "h", "#only")
@example("http", "://", "h", "")
@example("http", "://", "", "/x")
def test_the_request_url_is_httpxs_parse(scheme: str, sep: str, authority: str, rest: str) -> None:
    """The URL made from its origin's parse equals httpx.URL's, parts and text, or both refuse it."""
    _same_parse(scheme + sep + authority + rest)


@pytest.mark.parametrize("url", ["http://h/" + "a" * 9000, "http://h/\u200b", "http://h/a\tb"])
def test_urls_off_the_fast_path_are_parsed_whole(url: str) -> None:
    """A very long URL or one with an invisible character is parsed (or refused) by httpx itself."""
    _same_parse(url)
