"""``pipeline validate``: a corpus linted without the network.

Reads: what the read pass collected (files that failed, every URL reference). Returns: one printable line
per problem (a file's front-matter error, an invalid URL with its field path) and a summary line.
Settings: none (the read pass used ``corpus.*`` and ``links.*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.text import printable

if TYPE_CHECKING:
    from pipeline.readpass import Corpus


def lint(corpus: Corpus) -> tuple[list[str], str]:
    """Every problem of the corpus as a line for people, and the summary line."""
    problems = [f"{printable(error.article)}: error: {printable(error.message)}" for error in corpus.errors]
    for refs in corpus.refs.values():
        for ref in refs:
            if ref.normalized is None:
                problems.append(
                    printable(
                        f"{ref.article}: {ref.field_path}: invalid URL {ref.url!r}: {ref.invalid_reason}"
                    )
                )
    urls = sum(len(refs) for refs in corpus.refs.values())
    summary = (
        f"{len(corpus.paths)} articles read, {len(corpus.errors)} files failed, "
        f"{urls} URL references, {len(problems)} problems"
    )
    return problems, summary
