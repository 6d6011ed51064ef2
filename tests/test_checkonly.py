"""The check-only mode's own shortcuts: what a `--check-only` run still reads, writes and records."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from localsite import LocalSite, make_settings

from pipeline import write
from pipeline.corpus import Article
from pipeline.models import ExitCode, RunOptions
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def test_check_only_rereads_only_articles_whose_flags_may_change(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check-only write pass re-reads only articles citing a dead URL or holding a link-health block."""
    local_site.route("/up", body=b"ok")
    local_site.route("/gone", status=404)
    corpus = tmp_path / "c"
    corpus.mkdir()
    up, gone = local_site.url("/up"), local_site.url("/gone")
    (corpus / "healthy.md").write_text(f'---\ntitle: a\nwebUrl: "{up}"\n---\n', encoding="utf-8")
    (corpus / "dead.md").write_text(f'---\ntitle: b\nwebUrl: "{gone}"\n---\n', encoding="utf-8")
    recovered = (
        f'---\ntitle: c\nwebUrl: "{up}"\nlinkHealth:\n  - field: webUrl\n    url: "{up}"\n'
        '    status: dead\n    since: "2026-10-01"\n---\n'
    )
    (corpus / "recovered.md").write_text(recovered, encoding="utf-8")
    healthy_before = (corpus / "healthy.md").read_bytes()
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={"hard": {"runs": 1, "days": 0}},
        metadata={"enabled": False},
    )
    reread: list[str] = []
    real_read = write.read_article

    def counting_read(path: Path, max_bytes: int) -> Article:
        reread.append(path.name)
        return real_read(path, max_bytes)

    monkeypatch.setattr(write, "read_article", counting_read)

    options = RunOptions(now=lambda: DAY0, show_progress=False, mode="check-only")
    outcome = refresh(settings, options, io.StringIO())

    assert outcome.exit_code is ExitCode.OK
    assert sorted(reread) == ["dead.md", "recovered.md"]
    assert "linkHealth:" in (corpus / "dead.md").read_text(encoding="utf-8")
    assert "linkHealth" not in (corpus / "recovered.md").read_text(encoding="utf-8")
    assert (corpus / "healthy.md").read_bytes() == healthy_before


def test_a_check_only_night_with_nothing_to_flag_skips_the_write_pass(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no dead URL and no link-health block, a check-only write pass visits no article and stores
    nothing; with a dead URL it records the URLs' evidence as before (a refresh night compares with it)."""
    from pipeline.health.history import HistoryStore

    local_site.route("/up", body=b"ok")
    local_site.route("/gone", status=404)
    corpus = tmp_path / "c"
    corpus.mkdir()
    up = local_site.url("/up")
    (corpus / "healthy.md").write_text(f'---\ntitle: a\nwebUrl: "{up}"\n---\n', encoding="utf-8")
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={"hard": {"runs": 1, "days": 0}},
        metadata={"enabled": False},
    )
    visited: list[object] = []
    real_may_edit = write._may_edit

    def counting_may_edit(path: Path, *args: object) -> bool:
        visited.append(path)
        return real_may_edit(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(write, "_may_edit", counting_may_edit)
    options = RunOptions(now=lambda: DAY0, show_progress=False, mode="check-only", force=True)

    assert refresh(settings, options, io.StringIO()).exit_code is ExitCode.OK
    assert visited == []
    with HistoryStore(settings.state.database) as store:
        assert store.url_evidence() == {}

    (corpus / "dead.md").write_text(f'---\ntitle: b\nwebUrl: "{local_site.url("/gone")}"\n---\n')
    assert refresh(settings, options, io.StringIO()).exit_code is ExitCode.OK
    assert sorted(Path(str(path)).name for path in visited) == ["dead.md", "healthy.md"]
    with HistoryStore(settings.state.database) as store:
        assert set(store.url_evidence()) == {up, local_site.url("/gone")}
    assert "linkHealth:" in (corpus / "dead.md").read_text(encoding="utf-8")
