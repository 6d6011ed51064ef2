"""Which URLs to leave alone: exclude and include rules, each remembered with where it came from.

Reads settings ``links.exclude``, ``links.exclude_file``, ``links.include`` and ``corpus.roots`` (a
``.lycheeignore`` in the working directory, where lychee looks, and in each root folder is read when
present), plus ``--exclude`` / ``--include`` patterns from the command line. Returns a
:class:`LinkFilter` whose ``skip_reason(url)`` names the rule that matched
(``excluded by .lycheeignore:3 (^https://example\\.com/)``), or None for a URL to check.

Rules are regular expressions searched anywhere in the normalized URL (``re.search``), as lychee does.
An ignore file holds one per line; blank lines and lines starting with ``#`` are skipped, and surrounding
white space is dropped. As in lychee, an include beats every exclude; when includes are given, a URL that
matches none of them is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import IgnoreFileError

if TYPE_CHECKING:
    from pipeline.config import Settings

IGNORE_FILE = ".lycheeignore"


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern and where it was given (``links.exclude``, ``.lycheeignore:3``, ``--include``)."""

    pattern: re.Pattern[str]
    origin: str

    def describe(self) -> str:
        """``origin (pattern)``, for reports."""
        return f"{self.origin} ({self.pattern.pattern})"


def read_rules(path: Path, origin: str | None = None) -> list[Rule]:
    """The rules of one ignore file; ``IgnoreFileError`` names the file and line of a bad one."""
    label = origin or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise IgnoreFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise IgnoreFileError(f"{path}: not UTF-8 text: {exc}") from None
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rules.append(Rule(re.compile(stripped), f"{label}:{number}"))
        except re.error as exc:
            raise IgnoreFileError(
                f"{path}:{number}: {stripped!r} is not a regular expression: {exc}"
            ) from None
    return rules


def _compiled(patterns: Sequence[str], origin: str) -> list[Rule]:
    return [Rule(re.compile(pattern), origin) for pattern in patterns]


@dataclass(frozen=True, slots=True)
class LinkFilter:
    """Exclude and include rules; ``skip_reason`` is the one question the runner asks."""

    excludes: tuple[Rule, ...] = ()
    includes: tuple[Rule, ...] = ()

    def skip_reason(self, url: str) -> str | None:
        """Why ``url`` is not checked, naming the rule; None when it is to be checked."""
        if self.includes:
            if any(rule.pattern.search(url) for rule in self.includes):
                return None  # an include beats every exclude (lychee's rule)
            excluded = self._excluded_by(url)
            if excluded is not None:
                return f"excluded by {excluded.describe()}"
            return "not matched by any include pattern (links.include / --include)"
        excluded = self._excluded_by(url)
        return f"excluded by {excluded.describe()}" if excluded is not None else None

    def _excluded_by(self, url: str) -> Rule | None:
        return next((rule for rule in self.excludes if rule.pattern.search(url)), None)


def build_filter(
    *,
    exclude: Sequence[str],
    include: Sequence[str],
    exclude_file: Path | None,
    roots: Sequence[Path],
    cli_exclude: Sequence[str] = (),
    cli_include: Sequence[str] = (),
) -> LinkFilter:
    """Every rule, in the order they are reported: config, exclude file, ``.lycheeignore`` files (the
    working directory's, then each root's), command line.

    Raises ``IgnoreFileError`` for an unreadable file or a bad line (command-line patterns were checked
    by the CLI, config patterns at load).
    """
    excludes = _compiled(exclude, "links.exclude")
    if exclude_file is not None:
        excludes += read_rules(exclude_file)
    seen: set[Path] = set()
    # lychee reads the working directory's file; the corpus roots' files are ours. Each file once.
    for folder in (Path(), *roots):
        candidate = folder / IGNORE_FILE
        if folder.is_dir() and candidate.is_file() and candidate.resolve() not in seen:
            seen.add(candidate.resolve())
            excludes += read_rules(candidate)
    excludes += _compiled(cli_exclude, "--exclude")
    includes = _compiled(include, "links.include") + _compiled(cli_include, "--include")
    return LinkFilter(tuple(excludes), tuple(includes))


def filter_for(
    settings: Settings, cli_exclude: Sequence[str] = (), cli_include: Sequence[str] = ()
) -> LinkFilter:
    """The run's rules from ``settings.links``, ``corpus.roots`` and the command line's patterns."""
    links = settings.links
    return build_filter(
        exclude=links.exclude,
        include=links.include,
        exclude_file=links.exclude_file,
        roots=settings.corpus.roots,
        cli_exclude=cli_exclude,
        cli_include=cli_include,
    )
