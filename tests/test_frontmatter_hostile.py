"""Hostile input gets a clear per-file error; writes are atomic, guarded and never clobber other edits."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from unprivileged import run_unprivileged

from pipeline.corpus import read_article
from pipeline.errors import FrontMatterError, OutsideRoots, WriteConflict
from pipeline.frontmatter.document import apply, parse, write_atomic
from pipeline.models import SetValue

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_132ac3e31a9df9d5.txt"

LAUGHS = b"---\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + b"".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(9)
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"---\ntitle: [unclosed\nnext: 1\n---\n", r"^line \d+: invalid YAML: "),
        (b"Just a text file.\n", r"^no front-matter: the file does not start with a '---' line$"),
        (b"---\ntitle: never closed\n", r"^unterminated front-matter: no closing '---' line$"),
        (b"---\n- a\n- b\n---\n", r"^line 2: the front-matter is a list, not a mapping of keys$"),
        (b"---\njust words\n---\n", r"^line 2: the front-matter is a single value, not a mapping of keys$"),
        (b"---\ntitle: a\nother: b\ntitle: c\n---\n", r"^line 4: duplicate key 'title'$"),
        (b"---\ntitle: a\x00b\n---\n", r"^binary file: it contains NUL bytes$"),
        (b"\xff\xfe-\x00-\x00-\x00\n\x00", r"^binary file"),
        (b"---\ntitle: caf\xe9\n---\n", r"^line 2: the front-matter is not UTF-8 text$"),
        (
            b"---\nx: !!python/object/apply:os.getcwd []\n---\n",
            r"^line 2: unsafe tag !!python/object/apply:os.getcwd",
        ),
        (b"---\nx: !custom value\n---\n", r"^line 2: unsupported tag !custom"),
        (b"---\nx: !!set {a, b}\n---\n", r"^line 2: unsupported tag !!set"),
        (b"---\nx: !!int twelve\n---\n", r"^line 2: 'twelve' is not a valid int$"),
        (
            b"---\nx:\n  <<: 5\n---\n",
            r"^line 3: a merge key \(<<\) must hold a mapping or a list of mappings$",
        ),
        (b"---\nx: &a [1, *a]\n---\n", r"^line 2: an alias refers to the collection that contains it$"),
        (b"---\nx: *missing\n---\n", r"^line 2: invalid YAML: found undefined alias$"),
        (b"---\n[a]: 1\n---\n", r"^line 2: a mapping key must be a plain or quoted text$"),
        (LAUGHS + b"---\n", r"aliases expand to more than 100000 values \(an alias bomb\?\)$"),
        (b"---\nx: " + b"[" * 3000 + b"]" * 3000 + b"\n---\n", r"nested too deeply|invalid YAML"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_hostile_input_is_a_clear_error(raw: bytes, message: str) -> None:
    """Each kind of bad file raises FrontMatterError with a message naming the problem (and line)."""
    with pytest.raises(FrontMatterError, match=message):
        parse(raw)


def test_python_tags_are_never_constructed(tmp_path: Path) -> None:
    """A `!!python/object/apply` tag is reported, and the call it names is never executed."""
    marker = tmp_path / "pwned"
    raw = f'---\nx: !!python/object/apply:os.mkdir ["{marker}"]\n---\n'.encode()

    with pytest.raises(FrontMatterError, match="unsafe tag"):
        parse(raw)
    assert not marker.exists()


def test_small_alias_use_is_expanded_into_plain_copies() -> None:
    """Ordinary aliases give equal but independent values (mutating one copy leaves the other)."""
    data = parse(b"---\na: &x {k: [1]}\nb: *x\n---\n").data

    assert data == {"a": {"k": [1]}, "b": {"k": [1]}}
    data["b"]["k"].append(2)
    assert data["a"] == {"k": [1]}


def test_huge_body_is_carried_as_bytes_and_edits_keep_it() -> None:
    """A 20 MB body (even with invalid UTF-8 and `---` lines) is not parsed and survives an edit unchanged."""
    body = (b"line of body text \xe9\n---\n" * 900_000)[: 20 * 1024 * 1024]
    raw = SEED.read_bytes() + body
    doc = parse(raw)

    assert doc.body == b"\n" + body
    new = apply(doc, [SetValue(("heat",), 3)])
    assert new.endswith(body) and len(new) == len(raw) - 1  # "heat: -1" became "heat: 3"
    assert parse(new).data["heat"] == 3


def test_bad_files_do_not_affect_good_ones(tmp_path: Path) -> None:
    """Reading a folder of mixed files: the bad ones raise errors naming them; the good ones parse."""
    files = {
        "good.md": SEED.read_bytes(),
        "bad_yaml.md": b"---\ntitle: [x\n---\n",
        "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00",
        "bomb.md": LAUGHS + b"---\n",
        "also_good.md": b"---\ntitle: fine\n---\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)

    results: dict[str, str] = {}
    for name in sorted(files):
        try:
            results[name] = read_article(tmp_path / name, 1 << 20).doc.data["title"]
        except FrontMatterError as exc:
            results[name] = str(exc)

    assert results["good.md"].startswith("China Drafts")
    assert results["also_good.md"] == "fine"
    for name in ("bad_yaml.md", "binary.md", "bomb.md"):
        assert results[name].startswith(f"{tmp_path / name}: ")
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


# --- write_atomic -----------------------------------------------------------------------------------------


def _article(folder: Path, name: str = "a.md") -> tuple[Path, bytes, bytes]:
    path = folder / name
    path.write_bytes(SEED.read_bytes())
    old = path.read_bytes()
    return path, old, apply(parse(old), [SetValue(("quality",), 20)])


def test_write_replaces_file_and_keeps_mode(tmp_path: Path) -> None:
    """A write puts the new bytes in place, keeps the file's mode and leaves no temporary file."""
    path, old, new = _article(tmp_path)
    path.chmod(0o640)

    write_atomic(path, new, old, [tmp_path])

    assert path.read_bytes() == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_write_keeps_the_owner(tmp_path: Path) -> None:
    """A file owned by someone else keeps its owner and group after the replace (when we may chown)."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    path, old, new = _article(tmp_path)
    os.chown(path, 65534, 65534)

    write_atomic(path, new, old, [tmp_path])

    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)
    assert path.read_bytes() == new


def test_unchanged_bytes_keep_mtime(tmp_path: Path) -> None:
    """Writing the bytes already on disk does nothing: the mtime stays as it was."""
    path, old, _ = _article(tmp_path)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))

    write_atomic(path, old, old, [tmp_path])

    assert path.stat().st_mtime_ns == 1_000_000_000_000_000_000


def test_edit_made_during_the_run_is_not_overwritten(tmp_path: Path) -> None:
    """If someone saved the file after it was read, the write is refused and their edit stays."""
    path, old, new = _article(tmp_path)
    theirs = old.replace(b"quality: 19", b"quality: 99")
    path.write_bytes(theirs)

    with pytest.raises(
        WriteConflict, match=f"^{re.escape(str(path))}: the file changed on disk during the run; not written$"
    ):
        write_atomic(path, new, old, [tmp_path])
    assert path.read_bytes() == theirs


def test_path_outside_roots_is_refused(tmp_path: Path) -> None:
    """A file outside every root is never written."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    path, old, new = _article(elsewhere)

    with pytest.raises(OutsideRoots, match="outside the configured roots"):
        write_atomic(path, new, old, [root])
    assert path.read_bytes() == old


def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    """A symlink inside a root that points outside it is resolved and refused; the target is untouched."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    target, old, new = _article(elsewhere)
    (root / "link.md").symlink_to(target)
    (root / "dir").symlink_to(elsewhere, target_is_directory=True)

    for path in (root / "link.md", root / "dir" / "a.md"):
        with pytest.raises(OutsideRoots, match=re.escape(f"{path}: resolves to {target}, outside")):
            write_atomic(path, new, old, [root])
    assert target.read_bytes() == old


def test_symlink_inside_root_writes_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    """A symlink to a file in the root writes that file and stays a symlink."""
    target, old, new = _article(tmp_path)
    link = tmp_path / "link.md"
    link.symlink_to(target)

    write_atomic(link, new, old, [tmp_path])

    assert link.is_symlink() and target.read_bytes() == new


def test_read_only_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    """A read-only file is not replaced; the error names it and the next file is still written."""
    locked, old, new = _article(tmp_path, "locked.md")
    other, other_old, other_new = _article(tmp_path, "other.md")
    locked.chmod(0o444)

    with pytest.raises(
        FrontMatterError, match=f"^{re.escape(str(locked))}: the file is read-only; not written$"
    ):
        write_atomic(locked, new, old, [tmp_path])
    write_atomic(other, other_new, other_old, [tmp_path])

    assert locked.read_bytes() == old and other.read_bytes() == other_new


def test_read_only_folder_is_an_error_naming_the_path(shared_dir: Path) -> None:
    """When the folder refuses a temporary file, the write fails with a message naming the path."""
    path, old, new = _article(shared_dir)
    path.chmod(0o666)
    shared_dir.chmod(0o555)

    def task() -> str:
        try:
            write_atomic(path, new, old, [shared_dir])
        except FrontMatterError as exc:
            return str(exc)
        return "written"

    output = run_unprivileged(task)

    assert output == f"{path}: cannot write (Permission denied)"
    assert path.read_bytes() == old


def test_huge_front_matter_is_refused_before_parsing() -> None:
    """A front-matter over 1 MiB is an error, not seconds and gigabytes of parsing."""
    keys = "".join(f"k{i}: v\n" for i in range(200_000))
    raw = f"---\n{keys}---\nbody\n".encode()
    with pytest.raises(
        FrontMatterError, match=r"the front-matter is too large \(\d+ bytes; the limit is 1048576\)"
    ):
        parse(raw)
