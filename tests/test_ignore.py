"""Ignore rules: exclude and include patterns with their origin, ignore files, lychee's precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.configfile import parse_settings
from pipeline.errors import ConfigError, IgnoreFileError
from pipeline.ignore import build_filter, read_rules


def test_reason_names_the_rule_that_matched(tmp_path: Path) -> None:
    """A skipped URL's reason names the config key, file and line, or flag that excluded it."""
    (tmp_path / ".lycheeignore").write_text("# comment\n\n  ^https://b\\.example/  \n", encoding="utf-8")
    rules = build_filter(
        exclude=["a\\.example"], include=[], exclude_file=None, roots=[tmp_path], cli_exclude=["c\\.example"]
    )
    assert rules.skip_reason("https://a.example/x") == "excluded by links.exclude (a\\.example)"
    assert rules.skip_reason("https://b.example/x") == (
        f"excluded by {tmp_path / '.lycheeignore'}:3 (^https://b\\.example/)"
    )
    assert rules.skip_reason("https://c.example/") == "excluded by --exclude (c\\.example)"
    assert rules.skip_reason("https://d.example/") is None


def test_include_beats_exclude_and_limits_checks(tmp_path: Path) -> None:
    """With includes, only matching URLs are checked, even when an exclude matches them too (as lychee)."""
    rules = build_filter(exclude=["example"], include=[], exclude_file=None, roots=[], cli_include=["/keep"])
    assert rules.skip_reason("https://x.example/keep") is None
    assert rules.skip_reason("https://x.example/drop") == "excluded by links.exclude (example)"
    assert "include" in (rules.skip_reason("https://other.org/") or "")


def test_bad_ignore_file_line_names_file_and_line(tmp_path: Path) -> None:
    """A line that is not a regular expression is refused with its file and line number."""
    path = tmp_path / "ignore.txt"
    path.write_text("fine\n(broken\n", encoding="utf-8")
    with pytest.raises(IgnoreFileError, match=r"ignore\.txt:2: '\(broken' is not a regular expression"):
        read_rules(path)


def test_exclude_file_is_checked_at_config_load(tmp_path: Path) -> None:
    """links.exclude_file must exist and parse: the error names links.exclude_file."""
    with pytest.raises(ConfigError, match=r"links\.exclude_file: .*cannot read"):
        parse_settings({"links": {"exclude_file": str(tmp_path / "missing.txt")}})
    with pytest.raises(ConfigError, match=r"links\.include: '\[' is not a regular expression"):
        parse_settings({"links": {"include": ["["]}})


def test_lycheeignore_in_the_working_directory_is_read_as_lychee_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.lycheeignore` in the working directory (where lychee looks) counts too, read once."""
    (tmp_path / "content").mkdir()
    (tmp_path / ".lycheeignore").write_text("^https://b\\.example/\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    below = build_filter(exclude=[], include=[], exclude_file=None, roots=[Path("content")])
    same = build_filter(exclude=[], include=[], exclude_file=None, roots=[tmp_path])

    assert below.skip_reason("https://b.example/x") == "excluded by .lycheeignore:1 (^https://b\\.example/)"
    assert len(same.excludes) == 1
