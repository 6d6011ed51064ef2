"""Atomic replace under concurrent edits (exchange under a lease, and the fallbacks), hard links, special
files, and the temporary files a killed run leaves."""

from __future__ import annotations

import io
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from edit_hammer import race
from localsite import LocalSite, make_settings
from unprivileged import run_unprivileged

from pipeline.cli import main
from pipeline.corpus import discover, read_article
from pipeline.errors import FrontMatterError, WriteConflict
from pipeline.frontmatter import replace as _replace
from pipeline.frontmatter.document import write_atomic
from pipeline.models import RunOptions
from pipeline.runner import refresh

OLD = b"---\ntitle: old\n---\nbody\n"
NEW = b"---\ntitle: new\n---\nbody\n"


def _file(folder: Path, name: str = "a.md", data: bytes = OLD) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_concurrent_editor_loses_no_edit(tmp_path: Path) -> None:
    """Appends, in-place writes and rename saves from another process, hammered while we write: none lost."""
    result = race(tmp_path, files=2, seconds=4, pause=0.001)

    assert result.written > 50 and result.conflicts > 10  # both outcomes were exercised
    assert result.lost == []


def _run_before_the_swap(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run ``action`` once, right before write_atomic swaps the new file in (after its last comparison)."""
    real = _replace._exchange
    calls = []

    def exchange(folder: int, first: str, second: str) -> bool:
        if not calls:
            action()
        calls.append(first)
        return real(folder, first, second)

    monkeypatch.setattr(_replace, "_exchange", exchange)


def test_save_by_rename_just_before_the_swap_is_swapped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor's rename save landing after the last comparison is put back in place; a conflict."""
    path = _file(tmp_path)
    theirs = b"---\ntitle: theirs\n---\nbody\n"
    script = (
        "import os, sys; open(sys.argv[1] + '~', 'wb').write(sys.argv[2].encode()); "
        "os.replace(sys.argv[1] + '~', sys.argv[1])"
    )
    _run_before_the_swap(
        monkeypatch,
        lambda: subprocess.run([sys.executable, "-c", script, str(path), theirs.decode()], check=True),
    )

    with pytest.raises(WriteConflict, match="the file changed on disk during the run; not written"):
        write_atomic(path, NEW, OLD, [tmp_path])

    assert path.read_bytes() == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_append_by_a_program_that_opens_the_file_during_the_swap_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program opening the file to append while we swap holds the old file: the lease shows it, we swap
    back, and its append lands in the file in place."""
    path = _file(tmp_path)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.stdin.readline(); open(sys.argv[1], 'ab').write(b'appended')",
            path,
        ],
        stdin=subprocess.PIPE,
    )

    def open_meanwhile() -> None:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
        wchan = Path(f"/proc/{writer.pid}/wchan")
        deadline = time.monotonic() + 20
        while wchan.read_text() != "__break_lease" and time.monotonic() < deadline:
            time.sleep(0.01)  # until it is inside open(), held by the lease until we let go
        assert wchan.read_text() == "__break_lease"

    _run_before_the_swap(monkeypatch, open_meanwhile)

    with pytest.raises(WriteConflict):
        write_atomic(path, NEW, OLD, [tmp_path])
    writer.communicate(timeout=10)
    assert writer.returncode == 0

    assert path.read_bytes() == OLD + b"appended"


def test_without_rename_exchange_the_plain_replace_still_refuses_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where renameat2 is missing (or the file system refuses RENAME_EXCHANGE) the write still works and
    an edit made before the last comparison is still refused."""
    monkeypatch.setattr(_replace, "_RENAMEAT2", None)  # a kernel or file system without it cannot run here
    path = _file(tmp_path)
    path.chmod(0o640)

    write_atomic(path, NEW, OLD, [tmp_path])
    path.write_bytes(b"edited")
    with pytest.raises(WriteConflict):
        write_atomic(path, OLD, NEW, [tmp_path])

    assert path.read_bytes() == b"edited" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_a_file_we_may_not_lease_is_still_swapped(shared_dir: Path) -> None:
    """Not the owner (no lease for us): the exchange still writes it, and still refuses an edited file."""
    path = _file(shared_dir)
    path.chmod(0o666)
    other = _file(shared_dir, "b.md")
    other.chmod(0o666)
    shared_dir.chmod(0o777)

    def task() -> str:
        fd = os.open(path, os.O_RDONLY)
        try:
            leased = _replace._take_lease(fd)
        finally:
            os.close(fd)
        write_atomic(path, NEW, OLD, [shared_dir])
        try:
            write_atomic(other, NEW, b"not what is there", [shared_dir])
        except WriteConflict:
            return f"leased={leased} conflict"
        return f"leased={leased} written"

    assert run_unprivileged(task) == "leased=False conflict"
    assert path.read_bytes() == NEW and other.read_bytes() == OLD


def test_extended_attributes_are_kept(tmp_path: Path) -> None:
    """A user's extended attributes (tags, ACLs) survive the replace."""
    path = _file(tmp_path)
    try:
        os.setxattr(path, "user.pipeline-test", b"kept")
    except OSError:
        pytest.skip("this file system has no user extended attributes")

    write_atomic(path, NEW, OLD, [tmp_path])

    assert os.getxattr(path, "user.pipeline-test") == b"kept"


def test_an_article_with_two_hard_links_is_refused(tmp_path: Path) -> None:
    """Replacing a hard-linked file would split the links: refused with a clear message, both untouched."""
    path = _file(tmp_path)
    twin = tmp_path / "twin.md"
    os.link(path, twin)

    with pytest.raises(
        FrontMatterError, match=r"a\.md: the file has 2 hard links and replacing it would break"
    ):
        write_atomic(path, NEW, OLD, [tmp_path])

    assert path.read_bytes() == OLD and os.path.samefile(path, twin)


def _special_corpus(folder: Path) -> dict[str, str]:
    os.mkfifo(folder / "fifo.md")
    os.mknod(folder / "null.md", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (folder / "dangling.md").symlink_to(folder / "missing.md")
    (folder / "zero.md").symlink_to("/dev/zero")
    _file(folder, "good.md")
    return {
        "dangling.md": "a dangling symlink: its target does not exist",
        "fifo.md": "a FIFO, not a regular file; not read",
        "null.md": "a character device, not a regular file; not read",
        "zero.md": "a symlink to outside the corpus roots; not followed",
    }


def test_special_files_are_reported_and_never_opened(tmp_path: Path) -> None:
    """A FIFO, a device, a dangling symlink and a symlink to /dev/zero named *.md are each a file error."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    expected = _special_corpus(tmp_path)

    found = list(discover([tmp_path], ["*.md"]))

    assert [p for p in found if isinstance(p, Path)] == [tmp_path / "good.md"]
    errors = {Path(e.article).name: e.message for e in found if not isinstance(e, Path)}
    assert errors == expected


def test_a_special_file_given_as_a_root_is_reported(tmp_path: Path) -> None:
    """`pipeline refresh fifo.md`: the FIFO named on the command line is a file error too, never opened."""
    os.mkfifo(tmp_path / "fifo.md")

    found = list(discover([tmp_path / "fifo.md"], ["*.md"]))

    assert [(Path(e.article).name, e.message) for e in found if not isinstance(e, Path)] == [
        ("fifo.md", "a FIFO, not a regular file; not read")
    ]


def test_reading_a_fifo_put_in_place_of_an_article_does_not_block(tmp_path: Path) -> None:
    """An article swapped for a FIFO after discovery is refused at once, never waited on."""
    os.mkfifo(tmp_path / "a.md")

    with pytest.raises(FrontMatterError, match=r"a\.md: a FIFO, not a regular file$"):
        read_article(tmp_path / "a.md", 1000)


def test_validate_reports_special_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pipeline validate` lists every special file as an error and exits 1."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    corpus = tmp_path / "c"
    corpus.mkdir()
    expected = _special_corpus(corpus)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"state": {"dir": str(tmp_path / "s")}}), encoding="utf-8")

    with pytest.raises(SystemExit) as stopped:
        main(["validate", str(corpus), "--config", str(config)])

    assert stopped.value.code == 1
    out = capsys.readouterr().out
    for name, message in expected.items():
        assert f"{corpus / name}: error: {message}" in out
    assert "1 articles read, 4 files failed" in out


# --- temporary files of a killed run -----------------------------------------------------------------


def _big_corpus(corpus: Path, site: LocalSite, count: int) -> None:
    body = b"x" * 1_000_000 + b"\n"  # a slow fsync keeps each temporary file there long enough to be seen
    for i in range(count):
        page = site.url(f"/p{i}")
        (corpus / f"a{i}.md").write_bytes(
            f'---\ntitle: "{i}"\nexcerpt: ""\nwebUrl: "{page}"\n---\n'.encode() + body
        )


def _serve_pages(site: LocalSite, count: int) -> None:
    description = "A long enough description for the excerpt to be filled from the page."
    for i in range(count):
        html = (
            f"<html><head><title>t{i}</title><meta name='description' content='{description}'></head></html>"
        )
        site.route(f"/p{i}", body=html.encode(), headers={"Content-Type": "text/html"})


def _kill_during_the_write_pass(config: Path, corpus: Path, cwd: Path) -> set[str]:
    """Start a real refresh, SIGKILL it the moment a temporary file of ours appears; the leftovers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "refresh", "-q", "--config", str(config)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if any(_replace.is_leftover(name) for name in os.listdir(corpus)):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait()
    return {name for name in os.listdir(corpus) if _replace.is_leftover(name)}


def test_a_run_removes_the_temporary_files_a_killed_run_left(
    tmp_path: Path, local_site: LocalSite, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 during the write pass may leave `.NAME.*.tmp`; the next run removes them and says how many."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    count = 30
    _serve_pages(local_site, count)
    _big_corpus(corpus, local_site, count)
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "corpus": {"roots": [str(corpus)]},
                "http": {"allow_networks": ["127.0.0.0/8"]},
                "state": {"dir": str(tmp_path / "state")},
                "reports": {"dir": str(tmp_path / "reports")},
            }
        ),
        encoding="utf-8",
    )
    leftovers: set[str] = set()
    for _ in range(10):
        leftovers = _kill_during_the_write_pass(config, corpus, tmp_path)
        if leftovers:
            break
    assert leftovers, "no kill landed while a temporary file existed"
    (corpus / ".notes.md.swp").write_bytes(b"an editor's file: not ours")
    (corpus / ".a0.md.abcdefgh.tmp.keep").write_bytes(b"not our exact pattern")

    with caplog.at_level(logging.INFO, logger="pipeline"):
        outcome = refresh(settings, RunOptions(show_progress=False), io.StringIO())

    assert not any(_replace.is_leftover(name) for name in os.listdir(corpus))
    assert (corpus / ".notes.md.swp").exists() and (corpus / ".a0.md.abcdefgh.tmp.keep").exists()
    assert outcome.report.to_json()["totals"]["temp_files_removed"] == len(leftovers)
    assert f"removed {len(leftovers)} temporary files left by an earlier run" in caplog.text
    for i in range(count):  # every article is whole: old or new, never a mix
        text = (corpus / f"a{i}.md").read_bytes()
        assert text.endswith(b"x" * 1_000_000 + b"\n") and text.startswith(b'---\ntitle: "')


def test_a_fresh_temporary_file_is_not_removed(tmp_path: Path) -> None:
    """Only files older than the run's start are removed: one written after it started is left alone."""
    leftover = tmp_path / ".a.md.abcdefgh.tmp"
    leftover.write_bytes(b"x")
    started = time.time() - 60

    removed, failed = _replace.remove_leftovers([leftover], started)

    assert (removed, failed) == (0, []) and leftover.exists()
    removed, failed = _replace.remove_leftovers([leftover], time.time() + 1)
    assert (removed, failed) == (1, []) and not leftover.exists()


def test_a_file_kept_open_for_writing_elsewhere_is_not_written(tmp_path: Path) -> None:
    """While another program holds the article open for writing, it is not replaced: a clear conflict."""
    path = _file(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; f = open(sys.argv[1], 'ab'); print('open', flush=True); sys.stdin.read()",
            path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(WriteConflict, match=r"a\.md: the file is open for writing in another program"):
            write_atomic(path, NEW, OLD, [tmp_path])
    finally:
        holder.communicate(timeout=10)

    assert path.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]
