"""The read pass: unchanged files come from the history, changed ones are read, the pool equals serial."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from localsite import make_settings

from pipeline import decide, readpass
from pipeline.config import Settings
from pipeline.corpus import read_article
from pipeline.health.history import HistoryStore
from pipeline.links import extract_refs
from pipeline.readpass import Corpus, collect

_PAST = 1_700_000_000  # an mtime long before any read: the file has settled


def _article(n: int) -> str:
    related = "".join(
        f'  - title: r{i}\n    webUrl: "http://127.0.0.1:9/r/{n}/{i}"\n    images:\n'
        f'      - url: "http://127.0.0.1:9/img/{i}.png"\n'
        for i in range(2)
    )
    flags = "linkHealth:\n  - field: gone\n    url: http://x\n" if n % 5 == 0 else ""
    return (
        f'---\ntitle: "a{n}"\nwebUrl: "http://127.0.0.1:9/p/{n}"\noriginalUrl: "not a url {n}"\n'
        f"images: []\nrelated:\n{related}{flags}---\nBody {n}\n"
    )


def _corpus(tmp_path: Path, count: int) -> tuple[Path, Settings]:
    root = tmp_path / "c"
    (root / "sub").mkdir(parents=True)
    for n in range(count):
        path = root / ("sub" if n % 3 else ".") / f"a{n:03}.md"
        path.write_text(_article(n), encoding="utf-8")
        os.utime(path, ns=(_PAST * 10**9, _PAST * 10**9))
    (root / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    (root / "none.md").write_text("no front-matter\n", encoding="utf-8")
    return root, make_settings(tmp_path, corpus={"roots": [str(root)]})


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = readpass.read_article

    def counting(path: Path, limit: int) -> object:
        reads.append(path)
        return real(path, limit)

    monkeypatch.setattr(readpass, "read_article", counting)
    return reads


def _same(a: Corpus, b: Corpus) -> None:
    assert a.paths == b.paths
    assert a.refs == b.refs
    assert a.sketches == b.sketches
    assert a.revisit == b.revisit
    assert a.errors == b.errors


def test_an_unchanged_file_is_not_parsed_and_its_refs_come_from_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second read of unchanged files parses only the files that failed; the result equals a full read."""
    root, settings = _corpus(tmp_path, 12)
    fresh = collect(settings)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(settings, None, store, record=True)
        reads = _counting(monkeypatch)
        again = collect(settings, None, store, record=True)
    assert sorted(reads) == [root / "broken.md", root / "none.md"]  # failures are never stored
    _same(again, fresh)
    assert len(fresh.paths) == 12 and fresh.revisit and len(fresh.errors) == 2


def test_a_touched_replaced_or_edited_file_is_read_again_and_force_reads_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new mtime, a new inode (same size and mtime) or a new size means a read; --force reads every file."""
    root, settings = _corpus(tmp_path, 6)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(settings, None, store, record=True)
        touched, replaced, edited = root / "a000.md", root / "sub" / "a001.md", root / "sub" / "a002.md"
        os.utime(touched, ns=(_PAST * 10**9, (_PAST + 60) * 10**9))
        twin = replaced.with_name("twin.tmp")
        twin.write_bytes(replaced.read_bytes())
        os.utime(twin, ns=(_PAST * 10**9, _PAST * 10**9))
        os.replace(twin, replaced)  # same bytes, size and mtime: only the inode differs
        edited.write_text(_article(2).replace("/p/2", "/p/new"), encoding="utf-8")
        reads = _counting(monkeypatch)
        corpus = collect(settings, None, store, record=True)
        assert sorted(reads) == sorted([touched, replaced, edited, root / "broken.md", root / "none.md"])
        assert "http://127.0.0.1:9/p/new" in {r.normalized for r in corpus.refs[edited]}
        reads.clear()
        collect(settings, None, store, force=True)
    assert len(reads) == 8


def test_a_file_modified_within_the_last_second_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written just now could change again within its mtime tick: it is read again next time."""
    root, settings = _corpus(tmp_path, 2)
    (root / "a000.md").write_text(_article(0), encoding="utf-8")
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(settings, None, store, record=True)
        reads = _counting(monkeypatch)
        collect(settings, None, store, record=True)
    assert root / "a000.md" in reads and root / "sub" / "a001.md" not in reads


def test_other_settings_or_a_vanished_file_are_not_served_from_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries read with other link settings are not reused; a whole read forgets files that are gone."""
    root, settings = _corpus(tmp_path, 3)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(settings, None, store, record=True, prune=True)
        other = make_settings(tmp_path, corpus={"roots": [str(root)]}, links={"nested": []})
        reads = _counting(monkeypatch)
        corpus = collect(other, None, store)
        assert len(reads) == 5 and corpus.refs == collect(other).refs
        (root / "a000.md").unlink()
        collect(settings, None, store, record=True, prune=True)
        assert os.fsencode(root / "a000.md") not in store.load_files(readpass.settings_digest(settings))


def test_the_process_pool_read_equals_the_single_process_read(tmp_path: Path) -> None:
    """Above the threshold the read runs in two processes; paths, refs, sketches, flags and errors equal."""
    root, _ = _corpus(tmp_path, 560)  # more than the first batches, which are parsed here
    serial = collect(make_settings(tmp_path, corpus={"roots": [str(root)], "read_processes": 1}))
    pooled_settings = make_settings(
        tmp_path,
        corpus={"roots": [str(root)], "read_processes": 2, "pool_min_files": 10, "pool_min_bytes": 0},
    )
    pooled = collect(pooled_settings)
    _same(pooled, serial)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(pooled_settings, None, store, record=True)
        _same(collect(pooled_settings, None, store), serial)


def test_the_pool_is_used_only_above_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below pool_min_files the files are parsed in this process; at or above it, all but the first batches
    (the first 500, read while the others are still being found) in worker processes."""
    root, _ = _corpus(tmp_path, 560)
    reads = _counting(monkeypatch)  # only this process's reads are seen
    collect(
        make_settings(
            tmp_path,
            corpus={"roots": [str(root)], "read_processes": 2, "pool_min_files": 563, "pool_min_bytes": 0},
        )
    )
    assert len(reads) == 562
    first = reads[:500]
    reads.clear()
    collect(
        make_settings(
            tmp_path,
            corpus={"roots": [str(root)], "read_processes": 2, "pool_min_files": 562, "pool_min_bytes": 0},
        )
    )
    assert reads == first


def test_small_files_are_parsed_here_below_pool_min_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files holding fewer than pool_min_bytes in all are parsed in this process; at or above, in workers
    (all but the first batches)."""
    root, _ = _corpus(tmp_path, 560)
    total = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    reads = _counting(monkeypatch)
    corpus = {"roots": [str(root)], "read_processes": 2, "pool_min_files": 1}
    collect(make_settings(tmp_path, corpus={**corpus, "pool_min_bytes": total + 1}))
    assert len(reads) == 562
    reads.clear()
    collect(make_settings(tmp_path, corpus={**corpus, "pool_min_bytes": total}))
    assert len(reads) == 500


def test_a_stop_request_ends_the_pool_read_with_what_it_has(tmp_path: Path) -> None:
    """A stop set before the read: the pool read returns an empty corpus and stores nothing."""
    import threading

    root, _ = _corpus(tmp_path, 20)
    settings = make_settings(
        tmp_path, corpus={"roots": [str(root)], "read_processes": 2, "pool_min_files": 5, "pool_min_bytes": 0}
    )
    stop = threading.Event()
    stop.set()
    with HistoryStore(tmp_path / "h.sqlite") as store:
        corpus = collect(settings, stop, store, record=True, prune=True)
        assert store.load_files(readpass.settings_digest(settings)) == {}
    assert corpus.paths == [] and corpus.errors == []


def test_a_read_only_history_from_before_the_files_table_reads_every_file(tmp_path: Path) -> None:
    """A dry run on an older history (opened read-only, no files table) reads the corpus as usual."""
    import sqlite3

    _, settings = _corpus(tmp_path, 3)
    HistoryStore(tmp_path / "h.sqlite").close()
    with sqlite3.connect(tmp_path / "h.sqlite") as db:
        db.execute("DROP TABLE files")
    with HistoryStore(tmp_path / "h.sqlite", read_only=True) as store:
        corpus = collect(settings, None, store)
    _same(corpus, collect(settings))


def test_the_first_batch_handed_on_is_small_and_the_later_ones_full(tmp_path: Path) -> None:
    """``on_batch`` sees 50, 150 and 300 articles first (their URLs start the checks sooner), then 500 at
    a time."""
    root = tmp_path / "c"
    root.mkdir()
    for n in range(560):
        (root / f"a{n:04}.md").write_text(f'---\nwebUrl: "http://127.0.0.1:9/p/{n}"\n---\n', encoding="utf-8")
    settings = make_settings(tmp_path, corpus={"roots": [str(root)], "read_processes": 1})
    sizes: list[int] = []

    corpus = collect(settings, on_batch=lambda _corpus, paths: sizes.append(len(paths)))

    assert sizes == [50, 150, 300, 60]
    assert len(corpus.paths) == 560


def test_the_first_batch_is_handed_on_before_the_other_files_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first 50, 150 and 300 files are read and handed on as they are found, before the rest of the
    corpus is; the read is the same."""
    _, settings = _corpus(tmp_path, 600)
    whole = collect(settings)
    found: list[object] = []
    real = readpass.discover

    def counting(*args: object) -> object:
        for hit in real(*args):  # type: ignore[arg-type]
            found.append(hit)
            yield hit

    monkeypatch.setattr(readpass, "discover", counting)
    seen_then: list[int] = []
    corpus = collect(settings, on_batch=lambda _corpus, _paths: seen_then.append(len(found)))

    assert seen_then == [50, 200, 500, 602]
    _same(corpus, whole)


def test_kept_refs_and_sketches_equal_the_documents(tmp_path: Path) -> None:
    """The packed refs and sketch of every article decode to what its document gives, in order."""
    _, settings = _corpus(tmp_path, 12)
    corpus = collect(settings)

    assert len(corpus.paths) == 12 and list(corpus.refs) == corpus.paths
    for path in corpus.paths:
        doc = read_article(path, settings.corpus.max_file_bytes).doc
        assert corpus.refs[path] == extract_refs(path, doc.data, settings.links, doc.line_of)
        assert corpus.sketches[path] == decide.sketch(doc.data, settings)


def test_inode_numbers_of_2_to_the_63_and_more_are_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files whose inode numbers do not fit a signed 64-bit integer (overlayfs with xino, NFS, SMB) are read,
    stored and recognised unchanged the next night like any other."""
    root, settings = _corpus(tmp_path, 6)
    real_stat = Path.stat

    class HugeInode:
        def __init__(self, info: os.stat_result) -> None:
            self._info = info
            self.st_ino = (1 << 64) - 1 - info.st_ino  # at the top of the unsigned range

        def __getattr__(self, name: str) -> object:
            return getattr(self._info, name)

    def huge_inode(self: Path, *, follow_symlinks: bool = True) -> object:
        return HugeInode(real_stat(self, follow_symlinks=follow_symlinks))

    monkeypatch.setattr(Path, "stat", huge_inode)
    fresh = collect(settings)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        collect(settings, None, store, record=True)
        reads = _counting(monkeypatch)
        again = collect(settings, None, store, record=True)
    assert sorted(reads) == [root / "broken.md", root / "none.md"]
    _same(again, fresh)
