"""The write pass: its changes are spooled, not held, and come back in the order the articles were decided."""

from __future__ import annotations

import io
from pathlib import Path

from localsite import make_settings

from pipeline.models import Evidence, LinkResult, LinkStatus, PageMeta, RunOptions
from pipeline.readpass import collect
from pipeline.spool import Spool
from pipeline.write import write_pass

_LONG_ENOUGH = "long enough to be an excerpt worth keeping."


def test_changes_are_spooled_in_article_order(tmp_path: Path) -> None:
    """A cold night's changes (one per filled excerpt) go to a spool and iterate in article order."""
    root = tmp_path / "c"
    root.mkdir()
    urls = [f"http://127.0.0.1:9/p/{n}" for n in range(5)]
    for n, url in enumerate(urls):
        (root / f"a{n}.md").write_text(f'---\ntitle: "a{n}"\nexcerpt: ""\nwebUrl: "{url}"\n---\nBody\n')
    settings = make_settings(tmp_path, corpus={"roots": [str(root)]})
    corpus = collect(settings)
    evidence = Evidence(
        results={url: LinkResult(url, LinkStatus.OK) for url in urls},
        pages={
            url: PageMeta(
                url,
                description=f"What page {url[-1]} says about itself, {_LONG_ENOUGH}",
            )
            for url in urls
        },
    )

    changes, discovered, errors = write_pass(
        corpus, set(urls), evidence, settings, RunOptions(dry_run=True), io.StringIO()
    )

    assert isinstance(changes, Spool) and isinstance(discovered, Spool) and not errors
    assert [(c.article, c.field_path, c.new) for c in changes] == [
        (
            str(root / f"a{n}.md"),
            "excerpt",
            f"What page {n} says about itself, {_LONG_ENOUGH}",
        )
        for n in range(5)
    ]
