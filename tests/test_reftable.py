"""The packed reference table: refs decode back equal to what was stored, values shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.decide import UnitSketch
from pipeline.models import LinkRef
from pipeline.reftable import RefTable


def _refs(article: Path) -> list[LinkRef]:
    return [
        LinkRef(article, "webUrl", "https://a.test/x", "https://a.test/x", line=7, path=("webUrl",)),
        LinkRef(
            article,
            "related[0].images[0].url",
            "HTTPS://A.test/i.png",
            "https://a.test/i.png",
            line=None,
            path=("related", 0, "images", 0, "url"),
        ),
        LinkRef(article, "originalUrl", "not a url", None, "no scheme", 3, ("originalUrl",)),
    ]


def test_refs_decode_back_equal_in_order() -> None:
    """Every article's refs come back equal to the LinkRefs stored, in document order, by index too."""
    table = RefTable()
    first, second, empty = Path("/c/a.md"), Path("/c/b.md"), Path("/c/e.md")
    table.add(first, _refs(first))
    table.add(empty, [])
    table.add(second, _refs(second)[::-1])

    assert list(table) == [first, empty, second]
    assert table[first] == _refs(first) and list(table[first]) == _refs(first)
    assert table[second] == tuple(_refs(second)[::-1])
    assert table[empty] == [] and len(table[empty]) == 0
    assert table[second][0] == _refs(second)[2] and table[second][-1] == _refs(second)[0]
    assert table[first][1:] == _refs(first)[1:]
    assert table == {first: _refs(first), empty: [], second: _refs(second)[::-1]}
    with pytest.raises(IndexError):
        table[first][3]
    with pytest.raises(KeyError):
        table[Path("/c/missing.md")]


def test_article_added_again_replaces_its_refs() -> None:
    """Adding an article a second time replaces its refs and keeps its place."""
    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    table.add(first, _refs(first))
    table.add(second, _refs(second))
    table.add(first, _refs(first)[:1])

    assert list(table) == [first, second]
    assert table[first] == _refs(first)[:1] and table[second] == _refs(second)


def test_equal_values_are_one_object() -> None:
    """A URL and a field path cited by many articles are one string object, however often decoded."""
    table = RefTable()
    articles = [Path(f"/c/{n}.md") for n in range(3)]
    for article in articles:
        url, field = "".join(["https://a.test/", "x"]), "".join(["web", "Url"])  # new objects each time
        table.add(article, [LinkRef(article, field, url, url[:-1] + "x")])

    decoded = [table[article][0] for article in articles]
    assert len({id(ref.url) for ref in decoded}) == 1
    assert len({id(ref.field_path) for ref in decoded}) == 1
    assert decoded[0].url is decoded[0].normalized


def test_sketches_decode_back_equal() -> None:
    """Each article's sketch comes back equal, unit by unit, beside its refs."""
    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    sketch = (
        UnitSketch(("https://a.test/x",), (), True),
        UnitSketch(
            ("https://a.test/r", "https://a.test/amp"), ("https://a.test/i.png", "https://b.test/j"), False
        ),
        UnitSketch((), ("https://a.test/i.png",), False),
    )
    table.add(first, _refs(first), sketch)
    table.add(second, [], ())

    assert table.sketches[first] == sketch and table.sketches[second] == ()
    assert dict(table.sketches) == {first: sketch, second: ()}
    table.add(first, [], sketch[1:])
    assert table.sketches[first] == sketch[1:] and table[first] == []


def test_a_sealed_table_still_takes_articles() -> None:
    """After sealing (the read pass is over), an article added still shares the values already stored."""
    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    table.add(first, _refs(first))
    table.seal()
    assert table[first] == _refs(first)
    table.add(second, _refs(second))

    assert table[second] == _refs(second)
    assert table[second][0].url is table[first][0].url


def test_articles_come_back_as_equal_paths() -> None:
    """The table keeps paths as text and gives back equal Paths, in order, by index and slice."""
    table = RefTable()
    paths = [Path("/c/a.md"), Path("rel/b.md"), Path("/c/x\udcff.md")]  # a name that is not UTF-8
    for path in paths:
        table.add(path, _refs(path)[:1])

    assert table.paths == paths and list(table) == paths and len(table.paths) == 3
    assert table.paths[1] == Path("rel/b.md") and table.paths[1:] == paths[1:]
    assert all(isinstance(path, Path) for path in table.paths)
    assert Path("/c/a.md") in table and "/c/a.md" not in table
    assert table[Path("rel/b.md")][0].article == Path("rel/b.md")


def test_citations_and_normalized_urls_read_what_the_records_hold() -> None:
    """Read in place, each article's refs are the fields of its LinkRefs, and its valid URLs their URLs."""
    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    table.add(first, _refs(first))
    table.add(second, _refs(second)[:1])
    table.add(first, _refs(first)[::-1])  # added again: the new refs stand
    table.seal()

    assert list(table.citations()) == [
        (
            str(path),
            [(r.field_path, r.url, r.normalized, r.invalid_reason, r.line, r.path) for r in table[path]],
        )
        for path in (first, second)
    ]
    assert table.normalized_urls(first) == ["https://a.test/i.png", "https://a.test/x"]
    assert table.normalized_urls(second) == ["https://a.test/x"]


def test_refs_added_as_values_are_the_refs_added_as_records() -> None:
    """An entry's refs packed from their values decode to the LinkRefs ``add`` would have stored."""
    article = Path("/c/a.md")
    records, values = RefTable(), RefTable()
    records.add(article, _refs(article))

    values.add_values(
        article,
        [(r.field_path, r.url, r.normalized, r.invalid_reason, r.line, r.path) for r in _refs(article)],
    )

    assert values[article] == records[article] == _refs(article)


def test_cited_urls_named_and_each_sketch_read_what_the_records_hold() -> None:
    """Read in place, an article's cited URLs, the corpus's named URLs and every sketch equal what its
    LinkRefs and sketches say (an article added again: its new refs only)."""
    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    sketch = (UnitSketch(("https://a.test/x",), ("https://a.test/i.png",), False),)
    table.add(first, _refs(first)[:1], ())
    table.add(second, [*_refs(second)[:1], _refs(second)[2]], sketch)
    table.add(first, _refs(first), sketch)  # added again: the new refs stand
    table.seal()

    for path in (first, second):
        assert table.cited_urls(path) == [(r.normalized, r.path) for r in table[path] if r.normalized]
        assert table.cited_urls(str(path)) == table.cited_urls(path)
    assert list(table.each_cited_urls()) == [table.cited_urls(first), table.cited_urls(second)]
    assert table.named() == {"https://a.test/x", "https://a.test/i.png", "not a url"}
    assert list(table.sketches.each()) == list(table.sketches.values()) == [sketch, sketch]


def test_plan_and_counts_read_in_place_are_those_of_the_records() -> None:
    """The plan and the URL counts read from a RefTable in place (``each_cited_urls``, ``named``) equal
    those read from its LinkRefs."""
    from pipeline.config import Settings
    from pipeline.ignore import filter_for
    from pipeline.plan import counts, plan_requests

    table = RefTable()
    first, second = Path("/c/a.md"), Path("/c/b.md")
    table.add(first, _refs(first))
    table.add(
        second, [*_refs(second)[:1], LinkRef(second, "webUrl", "https://skip.test/", "https://skip.test/")]
    )
    records = {path: list(table[path]) for path in table}
    settings = Settings.model_validate({"links": {"exclude": ["https://skip.test/*"]}})
    rules = filter_for(settings, (), ())

    assert table.named() == {"https://a.test/x", "https://a.test/i.png", "not a url", "https://skip.test/"}
    plan = plan_requests(table, settings, rules)
    assert plan == plan_requests(records, settings, rules)
    assert plan.urls == ["https://a.test/x", "https://a.test/i.png"] and plan.excluded
    assert counts(table, plan, ["https://a.test/x"], []) == counts(records, plan, ["https://a.test/x"], [])
    assert counts(table, plan, [], []).invalid == 1


def test_the_digest_hashed_a_slice_at_a_time_tells_corpora_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal for the same corpus read again; different for a renamed article or a changed URL, also where
    the values fall in other slices of a column."""
    import pipeline.reftable as reftable

    monkeypatch.setattr(reftable, "_DIGEST_SLICE", 2)

    def digest(names: list[str], url: str = "https://a.test/x") -> str:
        table = RefTable()
        for name in names:
            article = Path(name)
            table.add(article, [LinkRef(article, "webUrl", url, url, line=7, path=("webUrl",))])
        table.seal()
        return table.digest()

    names = [f"/c/{n}.md" for n in range(5)]
    assert digest(names) == digest(list(names))
    assert digest(names) != digest([*names[:4], "/c/x.md"])
    assert digest(names) != digest(names, "https://a.test/y")
    assert digest(["/c/ab.md", "/c/c.md"]) != digest(["/c/a.md", "/c/bc.md"])
