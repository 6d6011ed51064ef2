"""Which redirected pages may supply metadata: pure decisions on URL pairs."""

from __future__ import annotations

import pytest

from pipeline.digest import landing_page


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
