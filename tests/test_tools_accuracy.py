"""Tests for pipeline.tools.accuracy.run_accuracy on a tiny pages.json written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.tools.accuracy import fold, run_accuracy

PAGE_A = """<html><head><meta charset="utf-8">
<meta property="og:title" content="It’s here">
<meta name="description" content="First   page…">
<meta property="og:image" content="/a.jpg">
<link rel="canonical" href="https://a.example/a">
<link rel="amphtml" href="https://a.example/a.amp">
</head><body></body></html>"""
PAGE_B = """<html><head><meta charset="utf-8"><title>Second page</title>
<meta name="description" content="Not what is expected">
</head><body></body></html>"""


@pytest.fixture
def pages_json(tmp_path: Path) -> Path:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "a.html").write_text(PAGE_A, encoding="utf-8")
    (tmp_path / "pages" / "b.html").write_text(PAGE_B, encoding="utf-8")
    listing = [
        {
            "file": "pages/a.html",
            "url": "https://a.example/a",
            "source": "tiny set",
            "expected": {
                "title": "It's here",
                "description": "First page...",
                "image": "https://a.example/a.jpg",
                "canonical": "https://a.example/a",
            },
        },
        {
            "file": "pages/b.html",
            "url": "https://b.example/b",
            "source": "tiny set",
            "expected": {
                "title": "Second page",
                "description": "Something else",
                "image": None,
                "canonical": "",
            },
        },
    ]
    path = tmp_path / "pages.json"
    path.write_text(json.dumps(listing), encoding="utf-8")
    return path


def test_prints_accuracy_per_field(pages_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each field's line shows matched / expected (pages expecting nothing are not counted) and a percent."""
    code = run_accuracy(pages_json)

    rows = {tuple(line.split()[:2]): line.split()[2:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert code == 0
    assert rows[("all", "title")] == ["2", "2", "100.0%"]
    assert rows[("all", "description")] == ["1", "2", "50.0%"]
    assert rows[("all", "image")] == ["1", "1", "100.0%"]
    assert rows[("all", "canonical")] == ["1", "1", "100.0%"]
    assert rows[("tiny", "description")] == ["1", "2", "50.0%"]


def test_dump_writes_one_json_line_per_page(pages_json: Path, tmp_path: Path) -> None:
    """``dump`` gets one JSON object per page with file, title, description, image, canonical and amp."""
    dump = tmp_path / "out.jsonl"

    run_accuracy(pages_json, dump)

    lines = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {
            "file": "pages/a.html",
            "title": "It’s here",
            "description": "First page…",
            "image": "https://a.example/a.jpg",
            "canonical": "https://a.example/a",
            "amp": "https://a.example/a.amp",
        },
        {
            "file": "pages/b.html",
            "title": "Second page",
            "description": "Not what is expected",
            "image": None,
            "canonical": None,
            "amp": None,
        },
    ]


def test_fold_treats_quotes_ellipses_and_spaces_alike() -> None:
    """Curly quotes, the ellipsis character and runs of whitespace compare equal to their plain forms."""
    assert fold("“It’s”  here…\n") == fold('"It\'s" here...')
    assert fold("It’s") != fold("Its")


def test_kinds_are_scored_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Values marked declared or algorithmic get their own rows besides the field's total."""
    (tmp_path / "a.html").write_text(PAGE_A, encoding="utf-8")
    listing = [
        {
            "file": "a.html",
            "url": "https://a.example/a",
            "source": "kinds set",
            "expected": {"description": "First page...", "image": "https://a.example/logo.png"},
            "kinds": {"description": "declared", "image": "algorithmic"},
        }
    ]
    (tmp_path / "pages.json").write_text(json.dumps(listing), encoding="utf-8")

    run_accuracy(tmp_path / "pages.json")

    rows = {tuple(line.split()[:2]): line.split()[2:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows[("kinds", "description[declared]")] == ["1", "1", "100.0%"]
    assert rows[("kinds", "image[algorithmic]")] == ["0", "1", "0.0%"]
    assert rows[("all", "image")] == ["0", "1", "0.0%"]
