"""URL references: field paths, normalisation, invalid references."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.config import LinkSettings
from pipeline.links import _normalize, extract_refs, normalize_url
from pipeline.models import field_spec, format_field_path

SEED = next((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


def _front_matter(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text.split("---\n")[1])
    assert isinstance(data, dict)
    return data


def test_seed_refs_have_field_paths() -> None:
    """Every default field at top level and in related[] is found, with its field path, in order."""
    refs = extract_refs(SEED, _front_matter(SEED), LinkSettings())
    paths = [ref.field_path for ref in refs]
    assert paths == [
        "originalUrl",
        "webUrl",
        "related[0].webUrl",
        "related[0].ampWebUrl",
        "related[0].cdnAmpWebUrl",
        "related[0].images[0].url",
        "related[1].webUrl",
        "related[1].images[0].url",
        "related[2].webUrl",
        "related[2].images[0].url",
        "related[3].webUrl",
        "related[3].images[0].url",
    ]
    assert all(ref.normalized for ref in refs)
    assert (
        refs[5].url
        == "https://techcrunch.com/wp-content/uploads/2020/03/GettyImages-1128224709.jpg?resize=1200,799"
    )


def test_configured_fields_are_read() -> None:
    """Only the configured fields are read; nested lists are configurable."""
    data = {
        "webUrl": "https://a.example/",
        "link": "https://b.example/",
        "more": [{"link": "https://c.example/"}],
    }
    refs = extract_refs(Path("a.md"), data, LinkSettings(fields=["link"], nested=["more"]))
    assert [(r.field_path, r.normalized) for r in refs] == [
        ("link", "https://b.example/"),
        ("more[0].link", "https://c.example/"),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("htp:/x", "unsupported scheme 'htp'"),
        ("", "empty URL"),
        ("   ", "empty URL"),
        ("javascript:alert(1)", "unsupported scheme 'javascript'"),
        ("mailto:someone@example.com", "unsupported scheme 'mailto'"),
        ("file:///etc/passwd", "unsupported scheme 'file'"),
        ("http://[::1", "malformed URL"),
        ("http://[fe80::zz]/", "malformed"),
        ("http:/no-host", "no host"),
        ("/relative/path", "not an absolute URL"),
        ("http://exa mple.com/", "white space"),
    ],
)
def test_invalid_references_are_never_requested(raw: str, reason: str) -> None:
    """Invalid or unsupported references get normalized=None and a reason."""
    normalized, why = normalize_url(raw)
    assert normalized is None
    assert reason in why


def test_non_string_value_is_invalid() -> None:
    """A number where a URL belongs is an invalid reference, not a crash."""
    (ref,) = extract_refs(Path("a.md"), {"webUrl": 42}, LinkSettings())
    assert ref.normalized is None and "not a string" in ref.invalid_reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://[0:0::1]:80/", "http://[::1]/"),
        ("https://example.com/Path/?Q=A", "https://example.com/Path/?Q=A"),
    ],
)
def test_normalisation_is_conservative(raw: str, expected: str) -> None:
    """Scheme/host case, default ports and fragments are folded; path and query are kept."""
    assert normalize_url(raw) == (expected, "")


def test_field_path_is_formatted_from_its_tuple() -> None:
    """A field path travels as a tuple and is formatted for people; its configured form has ``[]``."""
    path = ("related", 2, "images", 0, "url")
    assert format_field_path(path) == "related[2].images[0].url"
    assert field_spec(path) == "related[].images[].url"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://0x7f000001/", "http://127.0.0.1/"),
        ("http://0/", "http://0.0.0.0/"),
        ("http://017700000001/a", "http://127.0.0.1/a"),
        ("http://192.168.257/", "http://192.168.1.1/"),
        ("http://0x7F.1:8080/", "http://127.0.0.1:8080/"),
        ("http://127.0.0.1./", "http://127.0.0.1/"),
    ],
)
def test_non_canonical_ipv4_hosts_become_dotted_decimal(raw: str, expected: str) -> None:
    """Hosts a browser reads as IPv4 (WHATWG URL parsing) are rewritten to the address they mean."""
    assert normalize_url(raw) == (expected, "")


@pytest.mark.parametrize(
    "raw", ["http://1.2.3.4.5/", "http://256.1.1.1/", "http://4294967296/", "http://08/", "http://a.0x1g.09/"]
)
def test_hosts_ending_in_a_number_that_is_no_ipv4_address_are_invalid(raw: str) -> None:
    """A host whose last label is a number but that is no valid IPv4 address is invalid, never requested."""
    normalized, reason = normalize_url(raw)
    assert normalized is None and "malformed host" in reason


def test_names_ending_in_letters_stay_names() -> None:
    """example.1a and 1.example keep being host names."""
    assert normalize_url("http://example.1a/") == ("http://example.1a/", "")
    assert normalize_url("http://1.example/") == ("http://1.example/", "")


@pytest.mark.parametrize(
    "raw",
    [
        "HTTPS://Example.COM:443/a?b=1#frag",
        "http://bücher.example/x",
        "http://127.1:8080",
        "http://0x7f000001/p",
        "https://[::FFFF:1.2.3.4]/i.png",
        "http://user:pw@Example.com./path",
        "https://example.com/img.png?w=640&h=360",
    ],
)
def test_a_normalized_url_normalizes_to_itself(raw: str) -> None:
    """Normalizing is idempotent: a URL already normalized is its own key (probes are found without it)."""
    once = normalize_url(raw)[0]

    assert once is not None and normalize_url(once) == (once, "")


_NETLOC = st.text(st.sampled_from("aZ09.-_~:@[]%!$&'()*+,;=\u00e9\u0430\uff0f"), max_size=20)
_AFTER = st.text(st.sampled_from("/?#aZ09.-%:@[]\u00e9"), max_size=20)


@settings(max_examples=3000)
@given(
    st.sampled_from(["http", "https", "HTTPS", "ftp", "", "http:", "h\u0131tp"]),
    st.sampled_from(["://", ":/", ":", "//"]),
    st.one_of(_NETLOC, st.sampled_from(["127.0.0.5:41234", "[::1]:80", "u:p@H.com:80", "h:99999", "127.1"])),
    _AFTER,
)
@example("http", "://", "Example.COM:80", "")
@example("http", "://", "h", "/p#a?b")
@example("https", "://", "h", "?")
@example("http", "://", "[zz]", "/x")
def test_the_origin_alone_gives_the_whole_urls_normalisation(
    scheme: str, sep: str, netloc: str, rest: str
) -> None:
    """Normalising a URL from its origin's normalisation gives what parsing the whole URL gives: the same
    URL, or the same refusal."""
    raw = scheme + sep + netloc + rest  # no white space: ``_normalize`` takes the text as stripped and vetted
    assert normalize_url(raw) == _normalize(raw)
