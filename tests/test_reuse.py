"""A quiet night like the last write pass's reuses its URL digests: no stored page read when all settled."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from localsite import LocalSite, make_settings

from pipeline import checkpass, reuse, write
from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, LinkResult, LinkStatus, RunOptions, StoredPage
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
_TEXT = "What this story says about itself, long enough to be an excerpt worth keeping."
HTML = {"Content-Type": "text/html; charset=utf-8"}


class _Seen:
    """How often the stored pages were read (at once, or deferred) and which articles were re-read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loads = 0
        self.read: list[str] = []
        real_known, real_read = checkpass.known_pages, write.read_article

        def known(*args: Any) -> Any:
            self.loads += 1
            return real_known(*args)

        def read(path: Path, limit: int) -> Any:
            self.read.append(path.name)
            return real_read(path, limit)

        monkeypatch.setattr(checkpass, "known_pages", known)
        monkeypatch.setattr(reuse, "known_pages", known)
        monkeypatch.setattr(write, "read_article", read)

    def clear(self) -> None:
        self.loads, self.read = 0, []


def _corpus(site: LocalSite, tmp_path: Path) -> tuple[Path, Settings]:
    for name in ("a", "b"):
        site.route(
            f"/{name}",
            body=(
                f"<html><head><title>{name}</title><meta property='og:description' content='{_TEXT}'>"
                "</head><body>x</body></html>"
            ).encode(),
            headers=HTML,
        )
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.md").write_text(
            f'---\ntitle: "{name}"\nexcerpt: ""\nwebUrl: "{site.url("/" + name)}"\n---\nBody\n',
            encoding="utf-8",
        )
    return root, make_settings(tmp_path, corpus={"roots": [str(root)]})


def _nights(settings: Settings, first: int, count: int) -> Iterator[dict[str, Any]]:
    """Nights ``first``, ``first + 1`` … an hour apart (no verdict due again), each one's report."""
    for hour in range(first, first + count):
        now = DAY0 + timedelta(hours=hour)
        outcome = refresh(settings, RunOptions(now=lambda now=now: now, show_progress=False), io.StringIO())
        assert outcome.exit_code is ExitCode.OK
        yield outcome.report.to_json()


def _settled(site: LocalSite, tmp_path: Path, seen: _Seen) -> tuple[Path, Settings, dict[str, Any]]:
    """Night 0 fills both excerpts, night 1 settles both (a quiet night: its digests get a basis)."""
    root, settings = _corpus(site, tmp_path)
    cold, settling = _nights(settings, 0, 2)
    assert cold["totals"]["changes"] == 2 and settling["totals"]["changes"] == 0
    assert sorted(seen.read) == ["a.md", "a.md", "b.md", "b.md"] and seen.loads == 2
    seen.clear()
    return root, settings, settling


def test_a_quiet_night_like_the_last_reads_no_stored_page(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet night whose history, corpus and settings are the last write pass's reads no stored page and
    re-reads no article, and reports what the full path reports."""
    seen = _Seen(monkeypatch)
    root, settings, settling = _settled(local_site, tmp_path, seen)

    warm, again = _nights(settings, 2, 2)

    assert (seen.loads, seen.read) == (0, [])
    for report in (warm, again):
        assert report["links"] == settling["links"] and report["totals"] == settling["totals"]
    assert all(_TEXT in (root / f"{name}.md").read_text() for name in ("a", "b"))


def test_a_write_to_the_stored_evidence_makes_the_night_read_it(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored page changed outside a run (counted by the history's triggers) is read: its article is
    decided again on the new metadata; a verdict recorded by another writer does the same."""
    seen = _Seen(monkeypatch)
    _, settings, _ = _settled(local_site, tmp_path, seen)
    url = local_site.url("/b")
    with HistoryStore(settings.state.database) as store:
        page = store.load_pages([url])[url]
        store.record_pages([replace(page, description="Rewritten " + _TEXT)])

    list(_nights(settings, 2, 1))
    assert seen.loads == 1 and seen.read == ["b.md"]  # b's page digest changed; a stays settled
    seen.clear()
    list(_nights(settings, 3, 1))  # the night before was quiet too: its digests stand for this one
    assert (seen.loads, seen.read) == (0, [])
    seen.clear()
    with HistoryStore(settings.state.database) as store:  # still alive (not due), another verdict
        moved = LinkResult(url, LinkStatus.REDIRECTED, 301, url + "/moved", checked_at=DAY0)
        store.record([moved], "elsewhere", DAY0)

    list(_nights(settings, 4, 1))
    assert seen.loads == 1 and seen.read == ["b.md"]


def test_a_changed_file_on_a_quiet_night_is_decided_on_the_stored_evidence(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An article edited since (its refs the same) is decided again on the stored pages, read for it then;
    the untouched one is not read."""
    seen = _Seen(monkeypatch)
    root, settings, _ = _settled(local_site, tmp_path, seen)
    list(_nights(settings, 2, 1))
    assert (seen.loads, seen.read) == (0, [])
    path = root / "b.md"
    path.write_text(path.read_text().replace(_TEXT, ""), encoding="utf-8")  # its excerpt emptied

    [report] = _nights(settings, 3, 1)

    assert (seen.loads, seen.read) == (1, ["b.md"])
    assert report["totals"]["changes"] == 1 and _TEXT in path.read_text()


def test_a_version_2_history_is_upgraded_to_count_its_evidence_writes(tmp_path: Path) -> None:
    """A history of schema version 2 (no write count, no basis) is upgraded in place: its rows kept, every
    write to links, pages, page_urls and archive counted, a basis stored with the generation."""
    path = tmp_path / "history.sqlite3"
    url = "http://127.0.0.1:9/p"
    with HistoryStore(path) as store:
        store.record([LinkResult(url, LinkStatus.OK, 200, checked_at=DAY0)], "old", DAY0)
        generation = store.next_generation()
    with sqlite3.connect(path) as db:  # as version 2 left it
        for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE evidence_writes")
        db.execute("ALTER TABLE evidence_generation DROP COLUMN basis")
        db.execute("PRAGMA user_version = 2")

    with HistoryStore(path) as store:
        assert store.schema_version == 3 and store.load([url])[url].status is LinkStatus.OK
        assert store.evidence_basis() is None and store.next_generation() == generation + 1
        before = store.evidence_writes()
        store.record([LinkResult(url, LinkStatus.FAILING, 500, checked_at=DAY0)], "new", DAY0)
        store.record_pages([StoredPage(url, url, DAY0, description=_TEXT)])  # a page and its page_urls row
        store.set_evidence_basis("b1")
        assert store.evidence_writes() == (before or 0) + 3 and store.evidence_basis() == "b1"
    assert before == 0
