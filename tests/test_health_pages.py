"""Page metadata across runs: what of this run's pages and probes is stored."""

from __future__ import annotations

import pytest

from pipeline.health import pages as health_pages
from pipeline.models import ImageMeta, ImageProbe, PageMeta


def test_share_probes_come_a_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's share images' probes come in chunks of at most the bound, every page's image in one of them."""
    monkeypatch.setattr(health_pages, "_SHARE_PROBES", 2)
    pages = {
        f"https://news.example/{n}": PageMeta(
            f"https://news.example/{n}", images=(ImageMeta(f"https://CDN.example/{n}.png"),)
        )
        for n in range(5)
    }
    probes = {
        f"https://cdn.example/{n}.png": ImageProbe(f"https://cdn.example/{n}.png", True, "image/png", n, 9)
        for n in range(5)
    }

    chunks = list(health_pages.share_probes(pages, probes))

    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    assert {url: found for chunk in chunks for url, found in chunk.items()} == {
        f"https://CDN.example/{n}.png": (True, n, 9) for n in range(5)
    }
