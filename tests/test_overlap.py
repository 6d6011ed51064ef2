"""The read pass and the check overlapped (pipeline/overlap.py, pipeline/check/stream.py)."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from localsite import LocalSite, make_settings
from PIL import Image

from pipeline import overlap, readpass, runner
from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, FileError, RunOptions, UrlHistory
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
HTML = {"Content-Type": "text/html; charset=utf-8"}
FILES = 1001  # more than two of the read pass's batches (50, then 500 at a time)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 200)).save(out, "PNG")
    return out.getvalue()


def _page(title: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        f'<meta property="og:description" content="{title}: a description long enough to be an excerpt.">'
        '<meta property="og:image" content="/img/share.png">'
        "</head><body><p>Story.</p></body></html>"
    ).encode()


def _serve(site: LocalSite) -> None:
    site.route("/story", body=_page("Park approved"), headers=HTML)
    site.route("/both", body=_page("Seen twice"), headers=HTML)
    site.route("/img/share.png", body=_png(640, 480), headers={"Content-Type": "image/png"})
    site.route("/img/other.png", body=_png(320, 240), headers={"Content-Type": "image/png"})
    site.route("/amp", body=b"ok")
    site.route("/gone", status=404)
    site.route("/moved", status=301, headers={"Location": site.url("/story", 1)})


def _corpus(root: Path, site: LocalSite) -> Path:
    """Many small articles; the first names /both as an image, the last (a later batch) as a page."""
    corpus = root / "c"
    corpus.mkdir(parents=True)
    for n in range(FILES):
        extra = f'images:\n  - url: "{site.url("/both")}"\n    width: 1\n    height: 1\n' if n == 0 else ""
        (corpus / f"a{n:05d}.md").write_text(
            f'---\ntitle: "A {n}"\nexcerpt: ""\nwebUrl: "{site.url("/story", n % 2)}"\n'
            f'ampWebUrl: "{site.url(f"/amp?n={n % 7}", n % 3)}"\n{extra}---\nBody\n',
            encoding="utf-8",
        )
    (corpus / "b.md").write_text(
        f'---\ntitle: b\nwebUrl: "{site.url("/gone")}"\nrelated:\n  - webUrl: "{site.url("/moved")}"\n'
        f'    images:\n      - url: "{site.url("/img/other.png", 2)}"\n---\n',
        encoding="utf-8",
    )
    (corpus / "z.md").write_text(
        f'---\ntitle: z\nexcerpt: ""\nwebUrl: "{site.url("/both")}"\nampWebUrl: "not a url"\n---\n',
        encoding="utf-8",
    )
    return corpus


def _settings(root: Path, corpus: Path, **sections: dict[str, object]) -> Settings:
    return make_settings(
        root, corpus={"roots": [str(corpus)]}, health={"hard": {"runs": 1, "days": 0}}, **sections
    )


def _run(settings: Settings, mode: str = "refresh") -> dict[str, object]:
    options = RunOptions(now=lambda: DAY0, show_progress=False, mode=mode)  # type: ignore[arg-type]
    outcome = refresh(settings, options, io.StringIO())
    assert outcome.exit_code is ExitCode.OK
    return outcome.report.to_json()


def _comparable(report: dict[str, object], corpus: Path) -> dict[str, object]:
    text = json.dumps({key: report[key] for key in ("links", "totals", "changes", "refused_pages")})
    return json.loads(text.replace(str(corpus), "CORPUS"))  # type: ignore[no-any-return]


def _requests(site: LocalSite) -> dict[tuple[int, str, str], int]:
    """Requests per host, method and path (each host's soft-404 probe path is random: one name for all)."""
    counts: dict[tuple[int, str, str], int] = {}
    for hit in site.hits:
        path = "probe" if hit.path.endswith("-pipeline-soft404-probe") else hit.path
        key = (hit.host_index, hit.method, path)
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("mode", ["refresh", "check-only"])
def test_the_overlapped_check_gives_what_the_sequential_check_gives(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Checks fed by the read pass give the same verdicts, changes, pages, stored history and files."""
    _serve(local_site)
    metadata = {"enabled": mode == "refresh"}
    seq_corpus = _corpus(tmp_path / "seq", local_site)
    ovl_corpus = _corpus(tmp_path / "ovl", local_site)

    with monkeypatch.context() as patched:
        patched.setattr(overlap, "eligible", lambda settings, options: False)
        sequential = _run(_settings(tmp_path / "seq", seq_corpus, metadata=metadata), mode)
    sequential_requests = _requests(local_site)
    local_site.reset()
    _serve(local_site)
    overlapped = _run(_settings(tmp_path / "ovl", ovl_corpus, metadata=metadata), mode)

    assert _comparable(overlapped, ovl_corpus) == _comparable(sequential, seq_corpus)
    for path in sorted(seq_corpus.iterdir()):
        assert (ovl_corpus / path.name).read_bytes() == path.read_bytes(), path.name
    requests = _requests(local_site)
    # /both was requested as an image before the last article named it as a page: once more, as a page.
    both = (0, "GET", "/both")
    assert {k: n for k, n in requests.items() if k != both} == {
        k: n for k, n in sequential_requests.items() if k != both
    }
    assert sequential_requests[both] == 1 and requests[both] in (1, 2)


def test_the_checks_start_before_the_read_pass_ends(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request leaves while the read pass is still reading articles."""
    _serve(local_site)
    corpus = _corpus(tmp_path, local_site)
    read_ended: list[float] = []
    real_collect, real_read_entry = readpass.collect, readpass.read_entry

    def slow_last_file(path: Path, settings: Settings) -> str | FileError:
        # The last file (a later batch than the first) is read only once a request has arrived (or after
        # 10 s), so the read pass is still going when the first batch's URLs reach the check, however long
        # the check's process takes to start on a busy machine; a check that waited for the read would
        # see its first request only after the read ended.
        if path.name == "z.md":
            deadline = time.monotonic() + 10
            while not local_site.hits and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_read_entry(path, settings)

    def timed_collect(*args: object, **kwargs: object) -> readpass.Corpus:
        found = real_collect(*args, **kwargs)  # type: ignore[arg-type]
        read_ended.append(time.monotonic())
        return found

    monkeypatch.setattr("pipeline.runner.collect", timed_collect)
    monkeypatch.setattr("pipeline.readpass.read_entry", slow_last_file)

    _run(_settings(tmp_path, corpus, metadata={"enabled": False}), "check-only")

    assert read_ended and min(hit.started for hit in local_site.hits) < read_ended[0]


def test_the_interpreter_lock_changes_hands_sooner_while_the_check_runs(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the read pass feeds the check, the switch interval is 0.5 ms; the run restores the old one."""
    _serve(local_site)
    corpus = _corpus(tmp_path, local_site)
    seen: list[float] = []
    real_put = overlap.CheckProcess.put

    def put(self: overlap.CheckProcess, *args: object, **kwargs: object) -> None:
        seen.append(sys.getswitchinterval())
        real_put(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(overlap.CheckProcess, "put", put)
    before = sys.getswitchinterval()

    _run(_settings(tmp_path, corpus, metadata={"enabled": False}), "check-only")

    assert seen and set(seen) == {0.0005}
    assert sys.getswitchinterval() == before


def test_a_run_failing_before_its_checks_leaves_no_check_running(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the read pass and the checks stops the overlap's threads, restores the interval."""
    _serve(local_site)
    corpus = _corpus(tmp_path, local_site)

    def broken_templates() -> None:
        raise RuntimeError("a template cannot be compiled")

    monkeypatch.setattr(runner, "prepare_reports", broken_templates)
    before = sys.getswitchinterval()
    options = RunOptions(now=lambda: DAY0, show_progress=False, mode="check-only")

    with pytest.raises(RuntimeError, match="template"):
        refresh(_settings(tmp_path, corpus, metadata={"enabled": False}), options, io.StringIO())

    assert sys.getswitchinterval() == before
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.name in {"check", "digest_0"} for t in threading.enumerate()):
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name in {"check", "digest_0"}]


def test_the_plan_reads_the_history_the_overlap_loaded(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the checks overlapping the read, each URL's history is loaded once a run, and the plan has it."""
    _serve(local_site)
    corpus = _corpus(tmp_path, local_site)
    settings = _settings(tmp_path, corpus, metadata={"enabled": False})
    _run(settings, "check-only")
    asked: list[str] = []
    recording: list[bool] = []  # recording the verdicts loads the rows it updates: not the plan's reads
    real_load, real_record = HistoryStore.load, HistoryStore.record

    def load(self: HistoryStore, urls: Iterable[str]) -> dict[str, UrlHistory]:
        wanted = list(urls)
        if not recording:
            asked.extend(wanted)
        return real_load(self, wanted)

    def record(self: HistoryStore, *args: Any) -> None:
        recording.append(True)
        real_record(self, *args)

    monkeypatch.setattr(HistoryStore, "load", load)
    monkeypatch.setattr(HistoryStore, "record", record)
    report = _run(settings, "check-only")

    assert asked and len(asked) == len(set(asked)), sorted(u for u in asked if asked.count(u) > 1)
    links = report["links"]
    assert isinstance(links, list) and links
    lost = [row["url"] for row in links if row["previous_status"] is None and row["status"] != "invalid"]
    assert len(links) > 20 and lost == [], "the plan lost these URLs' history"
