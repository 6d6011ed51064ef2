"""Grouping URLs by host for the check (pipeline/check/batch.py): which URLs can be requested, and where."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.check.attempt import _host_port
from pipeline.check.batch import _parsed_target, _target
from pipeline.models import Observation

_AUTHORITY = st.text(st.sampled_from("aZ09.-_~:@[]%!$&'()*+,;= \t\x7f\u00e9\u0430\u200b\xa0"), max_size=24)
_REST = st.text(st.sampled_from("/?#aZ09.-%:@[] \n\u00e9\x00"), max_size=24)


def _same_verdict(url: str) -> None:
    fast, whole = _target(url), _parsed_target(url)
    if isinstance(whole, Observation):
        assert fast == whole
    else:
        assert not isinstance(fast, Observation)
        assert fast[0] == whole[0]
        assert _host_port(fast[1]) == _host_port(whole[1])


@settings(max_examples=3000)
@given(
    st.sampled_from(["http", "https", "HTTPS", "ftp", "", "http:"]),
    st.sampled_from(["://", ":/", ":", "//"]),
    st.one_of(_AUTHORITY, st.sampled_from(["127.0.0.1:8080", "[::1]:99", "1.2.3.999", "h:99999", "h:x"])),
    _REST,
)
@example("https", "://", "Example.COM:443", "/a?b#c")
@example("http", "://", "xn--80ak6aa92e.com", "")
@example("http", "://", "\u0430\u0431.com:80", "/\u00e9")
def test_the_origin_alone_gives_the_whole_urls_verdict(
    scheme: str, sep: str, authority: str, rest: str
) -> None:
    """Parsing only a URL's origin accepts exactly the URLs httpx accepts whole, with the same host key."""
    _same_verdict(scheme + sep + authority + rest)


@pytest.mark.parametrize("url", ["http://h/" + "a" * 9000, "http://h/\u200b", "http://h:99999/x"])
def test_urls_off_the_fast_path_get_httpxs_own_verdict(url: str) -> None:
    """A very long URL, one with an invisible character, or a bad port is judged by the whole parse."""
    _same_verdict(url)
