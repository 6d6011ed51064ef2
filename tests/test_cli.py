"""The command line as a user runs it: real processes, exit codes, messages, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from localsite import LocalSite
from test_runs import _cli

from pipeline.lock import run_lock


def _config(tmp_path: Path, corpus: Path, **extra: object) -> Path:
    data = {
        "corpus": {"roots": [str(corpus)]},
        "http": {
            "allow_networks": ["127.0.0.0/8"],
            "connect_timeout": 2,
            "read_timeout": 5,
            "total_timeout": 10,
        },
        "state": {"dir": str(tmp_path / "state")},
        "reports": {"dir": str(tmp_path / "reports")},
        **extra,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    """`validate` names each bad file and each invalid URL with its field path, then exits 1."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "good.md").write_text('---\ntitle: ok\nwebUrl: "https://example.org/"\n---\n', encoding="utf-8")
    (corpus / "bad-url.md").write_text("---\ntitle: x\nwebUrl: htp:/x\n---\n", encoding="utf-8")
    (corpus / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    result = _cli("validate", str(corpus), "--config", str(_config(tmp_path, corpus)), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"{corpus / 'bad-url.md'}: webUrl: invalid URL 'htp:/x': unsupported scheme 'htp'" in result.stdout
    assert f"{corpus / 'broken.md'}: error:" in result.stdout
    assert "2 articles read, 1 files failed, 2 URL references, 2 problems" in result.stdout


def test_validate_clean_corpus_exits_0(tmp_path: Path) -> None:
    """A clean corpus validates with exit 0 (the bundled seeds are clean)."""
    seeds = Path(__file__).resolve().parent.parent / "seeds"
    result = _cli("validate", str(seeds), "--config", str(_config(tmp_path, seeds)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 articles read, 0 files failed, 12 URL references, 0 problems" in result.stdout


def test_config_error_exits_3_naming_the_key(tmp_path: Path) -> None:
    """A bad config value stops with exit 3 and the key's dotted path; nothing is created."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    config = _config(tmp_path, corpus, http={"per_host_concurrency": -1})
    result = _cli("refresh", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 3
    assert "http.per_host_concurrency: Input should be greater than or equal to 1" in result.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "reports").exists()


def test_second_run_exits_4_while_the_lock_is_held(tmp_path: Path) -> None:
    """While another run holds the lock, `refresh` exits 4 with a clear message and changes nothing."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    config = _config(tmp_path, corpus)
    (tmp_path / "state").mkdir()
    with run_lock(tmp_path / "state" / "pipeline.lock"):
        result = _cli("refresh", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 4
    assert "pipeline.lock" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_sigterm_during_a_run_exits_5_and_leaves_files_whole(tmp_path: Path, local_site: LocalSite) -> None:
    """SIGTERM against a slow server stops the run cleanly: exit 5, no temp file, every article unchanged."""
    local_site.route("/slow", delay=30, body=b"<html><head><title>t</title></head></html>")
    corpus = tmp_path / "c"
    corpus.mkdir()
    originals = {}
    for i in range(5):
        path = corpus / f"a{i}.md"
        path.write_text(f'---\ntitle: "{i}"\nexcerpt: ""\nwebUrl: "{local_site.url("/slow")}?{i}"\n---\n')
        originals[path] = path.read_bytes()
    config = _config(tmp_path, corpus)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while local_site.count("/slow") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 5, stderr
    assert time.monotonic() - started < 10
    assert "stopping after the current file" in stderr
    assert {path: path.read_bytes() for path in originals} == originals
    assert sorted(os.listdir(corpus)) == [f"a{i}.md" for i in range(5)]
    # The interrupted run is recorded, and a later run can take the lock again.
    assert (tmp_path / "reports" / "latest" / "report.json").exists()
    with run_lock(tmp_path / "state" / "pipeline.lock"):
        pass


def test_module_and_console_script_show_help(tmp_path: Path) -> None:
    """`python -m pipeline --help` lists the commands."""
    result = _cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("refresh", "validate", "report", "schedule", "bench", "accuracy"):
        assert command in result.stdout


def test_quiet_run_still_names_each_failing_file(tmp_path: Path) -> None:
    """Under --quiet (cron) a run that exits 1 says which files failed and why, once each."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    (corpus / "fine.md").write_text("---\ntitle: fine\n---\n", encoding="utf-8")
    result = _cli("refresh", "-q", "--config", str(_config(tmp_path, corpus)), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if "broken.md" in line]
    assert len(lines) == 1 and "invalid YAML" in lines[0]
    assert f"{corpus / 'broken.md'}: {corpus / 'broken.md'}" not in lines[0]


def test_dry_run_creates_no_state_and_no_report(tmp_path: Path) -> None:
    """`refresh --dry-run` prints its plan and leaves no state folder, lock file or report behind."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.md").write_text('---\ntitle: a\nwebUrl: "mailto:x@example.org"\n---\n', encoding="utf-8")
    result = _cli("refresh", "--dry-run", "--config", str(_config(tmp_path, corpus)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plan: 1 articles, 1 unique URLs" in result.stdout
    assert "invalid" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "pipeline.yaml"]


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM])
def test_changes_an_interrupted_run_did_not_write_are_written_next_run_without_a_request(
    tmp_path: Path, local_site: LocalSite, stop_signal: signal.Signals
) -> None:
    """A run killed (or stopped) in its write pass leaves the rest to the next run, from stored metadata."""
    description = "Local officials approved the new riverside park after two years of debate."
    local_site.route(
        "/story",
        body=(
            "<html><head><title>Park</title>"
            f'<meta property="og:description" content="{description}"></head></html>'
        ).encode(),
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    corpus = tmp_path / "c"
    corpus.mkdir()
    articles = [corpus / f"a{i:04}.md" for i in range(1500)]
    for path in articles:
        path.write_text(f'---\ntitle: a\nexcerpt: ""\nwebUrl: "{local_site.url("/story")}"\n---\n')
    config = _config(tmp_path, corpus)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "-q", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(description in p.read_text() for p in articles[:5]):
        time.sleep(0.01)
    process.send_signal(stop_signal)
    process.communicate(timeout=30)
    written = sum(description in path.read_text() for path in articles)
    assert 0 < written < len(articles)
    assert local_site.count("/story", "GET") == 1

    result = _cli("refresh", "-q", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert all(f'excerpt: "{description}"' in path.read_text() for path in articles)
    assert local_site.count("/story", "GET") == 1  # not due: nothing was requested again
