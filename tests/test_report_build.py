"""Building the run report: read in place from the read pass's table, it is the report of the records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from localsite import make_settings

from pipeline import hostkey, spool
from pipeline.models import LinkRef, LinkResult, LinkStatus, host_key
from pipeline.reftable import RefTable
from pipeline.report import build, files
from pipeline.runreport import RunReport

NOW = datetime(2026, 11, 1, 3, tzinfo=UTC)


def _refs(article: Path, n: int) -> list[LinkRef]:
    own = f"https://h{n % 3}.test/a/{n}"
    shared = f"http://shared.test:8080/p/{n % 2}"
    return [
        LinkRef(article, "webUrl", own, own, line=4, path=("webUrl",)),
        LinkRef(article, "related[0].webUrl", shared, shared, line=9, path=("related", 0, "webUrl")),
        LinkRef(article, "related[1].webUrl", shared, shared, line=12, path=("related", 1, "webUrl")),
        LinkRef(article, "originalUrl", "htp:/broken", None, "no host", 3, ("originalUrl",)),
        LinkRef(
            article, "ampWebUrl", "https://skip.test/x", "https://skip.test/x", line=5, path=("ampWebUrl",)
        ),
    ]


def _report(refs: object, results: dict[str, LinkResult], tmp_path: Path, **extra: object) -> RunReport:
    return build.build_report(
        run_id="20261101T030000Z-ab12",
        started=NOW,
        finished=NOW,
        exit_code=0,
        mode="refresh",
        outage=None,
        settings=make_settings(tmp_path),
        articles=len(refs),  # type: ignore[arg-type]
        refs=refs,  # type: ignore[arg-type]
        results=results,
        previous=extra.get("previous", {}),  # type: ignore[arg-type]
        excluded=extra.get("excluded", {}),  # type: ignore[arg-type]
        early=extra.get("early"),  # type: ignore[arg-type]
        changes=(),
        discovered=(),
        refused_pages=(),
        errors=(),
    )


def _json(refs: object, tmp_path: Path) -> str:
    urls = {f"https://h{n % 3}.test/a/{n}" for n in range(6)} | {
        f"http://shared.test:8080/p/{n}" for n in (0, 1)
    }
    results = {url: LinkResult(url, LinkStatus.OK, 200, checked_at=NOW) for url in urls}
    results["http://shared.test:8080/p/1"] = LinkResult("http://shared.test:8080/p/1", LinkStatus.DEAD, 404)
    report = _report(
        refs,
        results,
        tmp_path,
        previous={"http://shared.test:8080/p/1": LinkStatus.FAILING},
        excluded={"https://skip.test/x": "excluded by a rule"},
    )
    return "".join(files.json_chunks(report))


def test_a_report_built_from_the_read_pass_table_is_the_one_built_from_records(tmp_path: Path) -> None:
    """Citations read in place (no LinkRef per ref) give report.json byte for byte as the records give it."""
    articles = {Path(f"/c/{name}.md"): _refs(Path(f"/c/{name}.md"), n) for n, name in enumerate("fbdace")}
    table = RefTable()
    for article, refs in articles.items():
        table.add(article, refs)
    table.seal()

    from_table, from_records = _json(table, tmp_path), _json(articles, tmp_path)

    assert from_table == from_records
    assert '"host": "shared.test:8080"' in from_table and '"status": "invalid"' in from_table


def test_host_keys_worked_out_once_per_origin_are_those_of_each_whole_url() -> None:
    """One parse per origin gives each URL the key a parse of the whole URL gives, whatever follows it."""
    urls = [
        "https://Example.test/a",
        "https://example.test:443/b?x=1",
        "https://example.test?q=/x",
        "https://example.test#frag/x",
        "http://example.test",
        "http://user@example.test:8080/p",
        "http://[::1]:9/x",
        "https://bücher.test/x",
        "http:/\t/tab.test/x",
        "mailto:someone@example.test",
        "ftp://files.test/a/b",
    ]
    hostkey._origin_host_key.cache_clear()

    keys = [host_key(url) for url in urls + urls]

    assert keys == [hostkey._parsed_host_key(url) for url in urls + urls]
    # The second time round every URL's origin is known (the one with a tab is parsed whole).
    assert hostkey._origin_host_key.cache_info().hits >= len(urls) - 1


def test_link_rows_of_urls_cited_by_many_articles_are_not_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's spool weighs a link row by its places: two URLs cited by 50 articles each go to the
    file, though two rows are far fewer than the records a spool holds as they are."""
    monkeypatch.setattr(spool, "_IN_MEMORY", 40)
    shared = ["https://tag.test/a", "https://tag.test/b"]
    table = RefTable()
    for n in range(50):
        article = Path(f"/c/{n:02}.md")
        table.add(
            article,
            [
                LinkRef(article, f"related[{i}].webUrl", u, u, line=9, path=("related", i, "webUrl"))
                for i, u in enumerate(shared)
            ],
        )
    table.seal()
    report = _report(table, {u: LinkResult(u, LinkStatus.OK, 200, checked_at=NOW) for u in shared}, tmp_path)
    links = report.links
    assert isinstance(links, spool.Spool) and links._file is not None and links._held is None
    assert [row.url for row in links] == shared and all(len(row.articles) == 50 for row in links)
