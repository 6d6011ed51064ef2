"""URL references: field paths, normalisation, invalid references."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import LinkSettings
from pipeline.links import extract_refs, format_field_path, normalize_url, parse_field_path

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


def test_field_path_round_trip() -> None:
    """Field paths convert between text and tuples both ways."""
    path = ("related", 2, "images", 0, "url")
    assert format_field_path(path) == "related[2].images[0].url"
    assert parse_field_path("related[2].images[0].url") == path
