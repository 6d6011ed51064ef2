"""Corpus discovery (sorted, hidden skipped, symlinks safe) and reading articles."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from unprivileged import run_unprivileged

from pipeline.corpus import Article, _read_up_to, discover, read_article
from pipeline.errors import FrontMatterError
from pipeline.models import FileError

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_132ac3e31a9df9d5.txt"
ARTICLE = b"---\ntitle: x\n---\n"


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(ARTICLE)


def found(roots: list[Path], patterns: tuple[str, ...] = ("*.md", "*.txt")) -> list[str]:
    out = []
    for item in discover(roots, patterns):
        out.append(f"ERROR {item.article}: {item.message}" if isinstance(item, FileError) else str(item))
    return out


def test_sorted_matching_files_and_hidden_ones_skipped(tmp_path: Path) -> None:
    """Matching files come in sorted path order; hidden files/folders and other patterns are skipped."""
    make(
        tmp_path,
        "b.md",
        "a.txt",
        "sub/z.md",
        "sub/deeper/a.md",
        "c.html",
        ".hidden.md",
        ".git/x.md",
        "sub/.d/y.md",
    )

    assert found([tmp_path]) == [
        str(tmp_path / "a.txt"),
        str(tmp_path / "b.md"),
        str(tmp_path / "sub/deeper/a.md"),
        str(tmp_path / "sub/z.md"),
    ]


def test_order_is_stable_whatever_the_creation_order(tmp_path: Path) -> None:
    """Two trees with the same names created in different orders list in the same order."""
    names = ["m.md", "a/b.md", "z.md", "a/a.md", "B.md"]
    make(tmp_path / "one", *names)
    make(tmp_path / "two", *reversed(names))

    one = [p.removeprefix(str(tmp_path / "one")) for p in found([tmp_path / "one"])]
    two = [p.removeprefix(str(tmp_path / "two")) for p in found([tmp_path / "two"])]
    assert one == two == ["/B.md", "/a/a.md", "/a/b.md", "/m.md", "/z.md"]


def test_file_root_missing_root_and_duplicates(tmp_path: Path) -> None:
    """A file root is that one file; a missing root is a FileError; the same real file is listed once."""
    make(tmp_path, "docs/a.md")
    (tmp_path / "alias").symlink_to(tmp_path / "docs", target_is_directory=True)

    result = found([tmp_path / "docs/a.md", tmp_path / "missing", tmp_path / "docs", tmp_path / "alias"])

    assert result == [
        str(tmp_path / "docs/a.md"),
        f"ERROR {tmp_path / 'missing'}: the corpus root does not exist (or is not a file or folder)",
    ]


def test_symlinks_inside_roots_are_followed_outside_ones_reported(tmp_path: Path) -> None:
    """A symlinked folder inside the roots is walked; one leading outside (never writable) is reported, not
    read; a symlink back to an enclosing folder is reported as a loop."""
    make(tmp_path, "root/a.md")
    make(tmp_path, "root/sub/b.md")
    make(tmp_path, "outside/linked.md")
    (tmp_path / "root/in").symlink_to(tmp_path / "root/sub", target_is_directory=True)
    (tmp_path / "root/out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "root/out.md").symlink_to(tmp_path / "outside/linked.md")
    (tmp_path / "root/loop").symlink_to(tmp_path / "root", target_is_directory=True)

    assert found([tmp_path / "root"]) == [
        str(tmp_path / "root/a.md"),
        str(tmp_path / "root/in/b.md"),
        f"ERROR {tmp_path / 'root/loop'}: symlink loop: this folder leads back to a folder that contains it",
        f"ERROR {tmp_path / 'root/out'}: a symlink to outside the corpus roots; not followed",
        f"ERROR {tmp_path / 'root/out.md'}: a symlink to outside the corpus roots; not followed",
    ]


def test_unreadable_folder_is_reported_and_the_rest_is_listed(shared_dir: Path) -> None:
    """A folder that cannot be listed gives a FileError; the files next to it are still found."""
    make(shared_dir, "a.md", "locked/b.md", "z.md")
    for path in (shared_dir / "a.md", shared_dir / "z.md"):
        path.chmod(0o644)
    (shared_dir / "locked").chmod(0o000)

    output = run_unprivileged(lambda: "\n".join(found([shared_dir])))

    assert output.splitlines() == [
        str(shared_dir / "a.md"),
        f"ERROR {shared_dir / 'locked'}: cannot read the folder (Permission denied)",
        str(shared_dir / "z.md"),
    ]


def test_read_article_parses_the_seed() -> None:
    """read_article returns the path as given and the parsed document."""
    article = read_article(SEED, 1 << 20)

    assert isinstance(article, Article)
    assert article.path == SEED and article.doc.raw == SEED.read_bytes()
    assert article.doc.data["provider"] == {"name": "acm.org", "domain": "acm.org"}


@pytest.mark.parametrize(
    ("content", "limit", "message"),
    [
        (ARTICLE, 5, r"the file is too large \(17 bytes; the limit is 5\)"),
        (b"\x00\x01\x02", 100, "binary file: it contains NUL bytes"),
        (b"---\ntitle: [\n---\n", 100, "line 3: invalid YAML"),
    ],
)
def test_read_article_errors_name_the_path(tmp_path: Path, content: bytes, limit: int, message: str) -> None:
    """Too large, binary and malformed files raise FrontMatterError whose message starts with the path."""
    path = tmp_path / "bad.md"
    path.write_bytes(content)

    with pytest.raises(FrontMatterError, match=f"^{re.escape(str(path))}: {message}"):
        read_article(path, limit)


def test_a_file_grown_since_its_stat_is_read_on_up_to_the_limit(tmp_path: Path) -> None:
    """Bytes written after the stat are read too (past one chunk), and never more than the limit."""
    path = tmp_path / "grown.md"
    content = os.urandom(200_000)
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_up_to(fd, 10, len(content) + 1) == content  # stat-ed at 10 bytes, then it grew
        os.lseek(fd, 0, os.SEEK_SET)
        assert _read_up_to(fd, 10, 150_001) == content[:150_001]
        os.lseek(fd, 0, os.SEEK_SET)
        assert _read_up_to(fd, len(content), len(content) + 1) == content
    finally:
        os.close(fd)


def test_read_article_on_a_folder_or_missing_file(tmp_path: Path) -> None:
    """A path that is a folder or does not exist is an error naming it."""
    with pytest.raises(FrontMatterError, match=f"^{re.escape(str(tmp_path))}: a folder, not a regular file$"):
        read_article(tmp_path, 100)
    with pytest.raises(
        FrontMatterError, match=re.escape("gone.md: cannot read the file (No such file or directory)")
    ):
        read_article(tmp_path / "gone.md", 100)
    assert not os.path.exists(tmp_path / "gone.md")
