"""The write pass: its changes are spooled, not held, and come back in the order the articles were decided."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from localsite import make_settings

from pipeline import decide, write
from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.models import (
    Evidence,
    ImageMeta,
    ImageProbe,
    LinkRef,
    LinkResult,
    LinkStatus,
    PageMeta,
    RunOptions,
)
from pipeline.readpass import collect
from pipeline.spool import Spool
from pipeline.write import write_pass

_LONG_ENOUGH = "long enough to be an excerpt worth keeping."


def test_changes_are_spooled_in_article_order(tmp_path: Path) -> None:
    """A cold night's changes (one per filled excerpt) go to a spool and iterate in article order."""
    root = tmp_path / "c"
    root.mkdir()
    urls = [f"http://127.0.0.1:9/p/{n}" for n in range(5)]
    for n, url in enumerate(urls):
        (root / f"a{n}.md").write_text(f'---\ntitle: "a{n}"\nexcerpt: ""\nwebUrl: "{url}"\n---\nBody\n')
    settings = make_settings(tmp_path, corpus={"roots": [str(root)]})
    corpus = collect(settings)
    evidence = Evidence(
        results={url: LinkResult(url, LinkStatus.OK) for url in urls},
        pages={
            url: PageMeta(
                url,
                description=f"What page {url[-1]} says about itself, {_LONG_ENOUGH}",
            )
            for url in urls
        },
    )

    changes, discovered, errors = write_pass(
        corpus, set(urls), evidence, settings, RunOptions(dry_run=True), io.StringIO()
    )

    assert isinstance(changes, Spool) and isinstance(discovered, Spool) and not errors
    assert [(c.article, c.field_path, c.new) for c in changes] == [
        (
            str(root / f"a{n}.md"),
            "excerpt",
            f"What page {n} says about itself, {_LONG_ENOUGH}",
        )
        for n in range(5)
    ]


# ---- the settled-article skip: one set lookup per article, re-decided when anything it reads changed ----

_A, _B = "http://127.0.0.1:9/p/a", "http://127.0.0.1:9/p/b"
_SHARE = "http://127.0.0.1:9/img/a.png"


def _settled_pair(tmp_path: Path) -> tuple[Path, Evidence, HistoryStore]:
    """Two articles whose excerpt is their page's description (nothing to change), decided once."""
    root = tmp_path / "c"
    root.mkdir()
    image = f'images:\n  - url: "{_SHARE}"\n    width: 800\n    height: 600\n'
    for name, url, images in (("a", _A, image), ("b", _B, "")):
        (root / f"{name}.md").write_text(
            f'---\ntitle: "{name}"\nexcerpt: "Page {name}, {_LONG_ENOUGH}"\n'
            f'webUrl: "{url}"\n{images}---\nBody\n'
        )
    evidence = Evidence(
        results={url: LinkResult(url, LinkStatus.OK) for url in (_A, _B)},
        pages={
            _A: PageMeta(_A, description=f"Page a, {_LONG_ENOUGH}", images=(ImageMeta(_SHARE),)),
            _B: PageMeta(_B, description=f"Page b, {_LONG_ENOUGH}"),
        },
        probes={_SHARE: ImageProbe(_SHARE, True, width=800, height=600)},
    )
    return root, evidence, HistoryStore(tmp_path / "history.sqlite3")


class _Counted:
    """The articles the write pass read and the articles it computed a fingerprint for, in one night."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[str] = []
        self.fingerprinted: list[str] = []
        real_read, real_fingerprint = write.read_article, decide.fingerprint

        def read(path: Path, limit: int) -> object:
            self.read.append(path.name)
            return real_read(path, limit)

        def fingerprint(refs: Sequence[LinkRef], evidence: Evidence, key: str) -> str:
            self.fingerprinted.append(Path(refs[0].article).name)
            return real_fingerprint(refs, evidence, key)

        monkeypatch.setattr(write, "read_article", read)
        monkeypatch.setattr(decide, "fingerprint", fingerprint)


def _night(root: Path, evidence: Evidence, store: HistoryStore, settings: Settings | None = None) -> None:
    settings = settings or make_settings(root.parent, corpus={"roots": [str(root)]})
    corpus = collect(settings)
    _, _, errors = write_pass(
        corpus,
        set(evidence.pages),
        evidence,
        settings,
        RunOptions(),
        io.StringIO(),
        store,
        urls={ref.normalized for refs in corpus.refs.values() for ref in refs if ref.normalized},
    )
    assert not errors


def _warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Evidence, HistoryStore, _Counted]:
    """Decided once (both settled), then a night with nothing changed: neither read nor fingerprinted."""
    root, evidence, store = _settled_pair(tmp_path)
    _night(root, evidence, store)
    counted = _Counted(monkeypatch)
    _night(root, evidence, store)
    assert (counted.read, counted.fingerprinted) == ([], [])
    return root, evidence, store, counted


def test_a_settled_article_is_redecided_when_a_verdict_of_its_urls_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verdict change re-decides the articles citing that URL; the others stay a set lookup."""
    root, evidence, store, counted = _warm(tmp_path, monkeypatch)
    failed = LinkResult(_A, LinkStatus.FAILING, first_failed_at=datetime(2026, 11, 1, tzinfo=UTC))

    _night(root, replace(evidence, results={**evidence.results, _A: failed}), store)

    assert (counted.read, counted.fingerprinted) == (["a.md"], ["a.md"])


def test_a_settled_article_is_redecided_when_its_page_metadata_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New stored metadata of a cited page (another description) re-decides only its articles."""
    root, evidence, store, counted = _warm(tmp_path, monkeypatch)
    page = replace(evidence.pages[_B], description=f"Page b rewritten, {_LONG_ENOUGH}")

    _night(root, replace(evidence, pages={**evidence.pages, _B: page}), store)

    assert (counted.read, counted.fingerprinted) == (["b.md"], ["b.md"])


def test_a_settled_article_is_redecided_when_its_pages_share_image_probe_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe of a cited page's share image is evidence of that page: a new size re-decides it."""
    root, evidence, store, counted = _warm(tmp_path, monkeypatch)
    probe = ImageProbe(_SHARE, True, width=1200, height=600)

    _night(root, replace(evidence, probes={_SHARE: probe}), store)

    assert (counted.read, counted.fingerprinted) == (["a.md"], ["a.md"])


def test_a_settled_article_is_redecided_when_the_settings_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other decision settings (or an outage) re-decide every article; the same again settles them."""
    root, evidence, store, counted = _warm(tmp_path, monkeypatch)
    other = make_settings(tmp_path, corpus={"roots": [str(root)]}, metadata={"write_canonical": True})

    _night(root, evidence, store, other)
    assert sorted(counted.read) == ["a.md", "b.md"]
    counted.read.clear()
    _night(root, replace(evidence, outage=True), store, other)
    assert sorted(counted.read) == ["a.md", "b.md"]
    counted.read.clear()
    counted.fingerprinted.clear()
    _night(root, replace(evidence, outage=True), store, other)
    assert (counted.read, counted.fingerprinted) == ([], [])


def test_a_settled_article_is_redecided_when_its_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited file (new size or mtime) is decided again; the untouched one is not."""
    root, evidence, store, counted = _warm(tmp_path, monkeypatch)
    path = root / "b.md"
    path.write_text(path.read_text() + "More body.\n")

    _night(root, evidence, store)

    assert (counted.read, counted.fingerprinted) == (["b.md"], ["b.md"])


def test_an_article_settled_before_generations_is_recognised_by_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row holding only a digest (an older history) costs a fingerprint, no re-read, and is then stamped."""
    root, evidence, store = _settled_pair(tmp_path)
    _night(root, evidence, store)
    rows = store.load_decided()
    store.record_decided(
        (name, size, mtime, digest.split(" ")[0]) for name, (size, mtime, digest) in rows.items()
    )
    counted = _Counted(monkeypatch)

    _night(root, evidence, store)
    first = (counted.read, sorted(counted.fingerprinted))
    counted.fingerprinted.clear()
    _night(root, evidence, store)

    assert first == ([], ["a.md", "b.md"])
    assert (counted.read, counted.fingerprinted) == ([], [])


def test_any_of_is_the_union_of_its_parts() -> None:
    """``AnyOf`` holds a URL when any of its parts does (the write pass's checked URLs, without a set)."""
    either = write.AnyOf({"https://a.example/"}, {"https://b.example/": 1})
    assert "https://a.example/" in either and "https://b.example/" in either
    assert "https://c.example/" not in either
