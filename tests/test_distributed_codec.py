"""What a worker hands back survives JSON exactly: observations, page metadata, probes, per-host figures."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.distributed import codec
from pipeline.models import FetchedPage, ImageMeta, ImageProbe, Observation, Outcome, PageMeta
from pipeline.runreport import HostStats

_text = st.text(max_size=40)  # any code point: NUL, lone surrogates, controls
_opt = st.none() | _text
_count = st.integers(min_value=0, max_value=10**6)

_observations = st.builds(
    Observation,
    url=_text,
    outcome=st.sampled_from(list(Outcome)),
    http_status=st.none() | st.integers(100, 599),
    final_url=_opt,
    redirects=st.lists(_text, max_size=3).map(tuple),
    reason=_text,
    network_level=st.booleans(),
    host=_text,
    elapsed=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
_images = st.builds(
    ImageMeta, url=_text, width=st.none() | _count, height=st.none() | _count, alt=_opt, type=_opt
)
_pages = st.builds(
    PageMeta,
    url=_text,
    title=_opt,
    description=_opt,
    images=st.lists(_images, max_size=3).map(tuple),
    canonical=_opt,
    amp=_opt,
    site_name=_opt,
    published=_opt,
    sources=st.dictionaries(_text, _text, max_size=3),
)
_probes = st.builds(
    ImageProbe,
    url=_text,
    alive=st.booleans(),
    content_type=_opt,
    width=st.none() | _count,
    height=st.none() | _count,
    reason=_text,
)
_records = st.builds(
    codec.Observed,
    observation=_observations,
    page=st.none() | _pages,
    validators=st.none() | st.tuples(_opt, _opt),
    probe=st.none() | _probes,
    refused=_opt,
)


@given(_records)
def test_an_observed_record_round_trips(record: codec.Observed) -> None:
    """decode(encode(x)) == x for any record, and the text is ASCII (safe in a PostgreSQL TEXT column)."""
    text = codec.encode(record)
    assert codec.decode(text) == record
    assert text.isascii() and "\x00" not in text


def test_the_page_body_never_travels() -> None:
    """An observation's fetched body is left out: bodies never leave the worker."""
    page = FetchedPage("http://h/a", "http://h/a", "text/html", {"etag": "x"}, b"<html>secret body</html>")
    obs = Observation("http://h/a", Outcome.SUCCESS, 200, page=page)

    text = codec.encode(codec.Observed(obs))

    assert "secret body" not in text
    assert codec.decode(text).observation.page is None


@given(st.lists(st.builds(HostStats, _text, _count, _count, _count, st.floats(0, 1e6), _count, _count)))
def test_host_stats_round_trip(items: list[HostStats]) -> None:
    """A shard's per-host figures come back keyed by host, equal."""
    stats = {item.host: item for item in items}
    assert codec.decode_stats(codec.encode_stats(stats)) == stats
    assert isinstance(json.loads(codec.encode_stats(stats)), list)


def test_rows_of_format_1_are_still_read() -> None:
    """A keyed-object row (a worker of the earlier release, mid-upgrade) decodes to the same record."""
    image = ImageMeta("http://h/i.png", 10, 20, "alt", "image/png")
    page = PageMeta("http://h/a", "T", "D", (image,), None, None, "S", None, {"title": "og"})
    probe = ImageProbe("http://h/i.png", True, "image/png", 10, 20, "")
    obs = Observation(
        "http://h/a", Outcome.MOVED, 200, "http://h/b", ("http://h/b",), "r", False, "h:80", 0.5
    )
    record = codec.Observed(obs, page, ("e", None), probe, "why", "w@h")
    data = {
        "observation": {**dataclasses.asdict(obs), "outcome": "moved", "page": None},
        "page": dataclasses.asdict(page),
        "validators": ["e", None],
        "probe": dataclasses.asdict(probe),
        "refused": "why",
        "worker": "w@h",
    }

    assert codec.decode(json.dumps(data)) == record


def test_a_row_of_an_unknown_format_is_a_clear_error() -> None:
    """A row written by a newer release names its format instead of decoding to something wrong."""
    with pytest.raises(ValueError, match="format 3"):
        codec.decode('[3, [], null, null, null, null, "w"]')
