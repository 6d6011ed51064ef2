"""The read pass: every article file found, read, and reduced to its refs and a sketch of what it needs.

Reads: ``corpus.*`` (roots, patterns, size cap), ``links.*``, ``metadata.*``, ``health.*`` (for the sketch).
Returns: a :class:`Corpus`; a file that cannot be read becomes a ``FileError`` and the pass goes on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import decide
from pipeline.config import Settings
from pipeline.corpus import discover, read_article
from pipeline.errors import FrontMatterError
from pipeline.links import extract_refs
from pipeline.models import (
    FileError,
    LinkRef,
)


@dataclass
class Corpus:
    """What the read pass keeps of each article: its refs and a sketch, never the whole document."""

    paths: list[Path] = field(default_factory=list)
    refs: dict[Path, list[LinkRef]] = field(default_factory=dict)
    sketches: dict[Path, tuple[decide.UnitSketch, ...]] = field(default_factory=dict)
    revisit: set[Path] = field(default_factory=set)  # flags to clean up even when no URL is checked
    errors: list[FileError] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # temporary files of the writer found beside articles


def collect(settings: Settings, stop: threading.Event | None = None) -> Corpus:
    """Discover, read and extract refs from every article; bad files become FileErrors.

    Stops early (with what it has) when ``stop`` is set; the caller sees the stop and ends the run.
    """
    corpus = Corpus()
    for found in discover(settings.corpus.roots, settings.corpus.patterns, corpus.leftovers):
        if stop is not None and stop.is_set():
            break
        if isinstance(found, FileError):
            corpus.errors.append(found)
            continue
        try:
            article = read_article(found, settings.corpus.max_file_bytes)
        except FrontMatterError as exc:
            corpus.errors.append(file_error(found, exc))
            continue
        corpus.paths.append(article.path)
        corpus.refs[article.path] = extract_refs(
            article.path, article.doc.data, settings.links, article.doc.line_of
        )
        corpus.sketches[article.path] = decide.sketch(article.doc.data, settings)
        if decide.stale_flags(article.doc.data, corpus.refs[article.path], settings):
            corpus.revisit.add(article.path)
    return corpus


def file_error(path: Path, exc: Exception) -> FileError:
    """A FileError whose message does not repeat the path it is filed under."""
    return FileError(str(path), str(exc).removeprefix(f"{path}: "))
