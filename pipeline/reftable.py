"""``RefTable``: every article's references and sketch, packed into numbers; records made only when read.

The read pass keeps each article's references for the whole run (the plan, the write pass's choice of
articles and the report's citations read them). As ``LinkRef`` objects in lists they cost about 1 KB per
article; here a reference is five 32-bit numbers in one array (its field path, the URL as written, the
normalized URL, its line and its invalid reason, each an index into a table of distinct values), so an
article costs its five numbers a reference and its path's text (a ``Path`` object would cost four times
as much). Its sketch (``UnitSketch``s, image planning) is packed the same way: per unit, three numbers and
the URLs' numbers. Equal strings and field paths are one object in the tables, shared by every record
decoded from them. ``LinkRef``s and ``Path``s are made when read.

Reads and writes: nothing but memory. Settings: none. A ``RefTable`` is a ``Mapping[Path,
Sequence[LinkRef]]``: ``table[path]`` is a sequence view of that article's refs (decoding one ``LinkRef``
per item read), equal to a list or tuple of equal ``LinkRef``s; two tables, or a table and a dict, with
equal refs are equal. ``table.sketches`` is the same for the sketches, ``table.paths`` the articles' paths.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Generic, TypeVar, overload

from pipeline.decide import UnitSketch
from pipeline.models import FieldPath, LinkRef

_NONE = 0xFFFFFFFF  # a normalized URL or a line that is None
_WIDTH = 5  # numbers per reference: field, URL as written, normalized URL, line, invalid reason

V = TypeVar("V")


_DIGEST_SLICE = 4096  # values of a column hashed at a time by RefTable.digest


class Interned(Generic[V]):
    """Distinct values numbered in the order first seen: one object per value, its number 4 bytes."""

    def __init__(self) -> None:
        self.values: list[V] = []
        self._numbers: dict[V, int] | None = {}

    def number(self, value: V) -> int:
        """The value's number (a new value gets the next one)."""
        if self._numbers is None:
            self._numbers = {value: number for number, value in enumerate(self.values)}
        found = self._numbers.get(value)
        if found is None:
            found = self._numbers[value] = len(self.values)
            self.values.append(value)
        return found

    def numbers(self) -> dict[V, int]:
        """The lookup from value to number, to read in a loop (a value not in it: ``number``)."""
        if self._numbers is None:
            self._numbers = {value: number for number, value in enumerate(self.values)}
        return self._numbers

    def seal(self) -> None:
        """No new values for now: the lookup from value to number goes (it comes back if one is added)."""
        self._numbers = None

    def shared(self, value: V) -> V:
        """The one stored object equal to ``value``."""
        return self.values[self.number(value)]


class RefTable(Mapping[Path, Sequence[LinkRef]]):
    """Every article's refs, in the order added; ``table[path]`` decodes them on access."""

    def __init__(self) -> None:
        # Articles by their path's text: a Path object costs about 350 bytes, its text about 90, and a
        # corpus of a million articles keeps every one through the run. Paths are made when read.
        self._articles: dict[str, int] = {}
        self._names: list[str] = []  # by article number
        self._bounds = array("I")  # per article number: first and past-last reference index
        self._packed = array("I")  # _WIDTH numbers per reference
        self._sketch_bounds = array("I")  # per article number: where its sketch starts and ends
        self._sketches = array("I")  # per unit: images empty?, page count, image count, then URL numbers
        self.texts: Interned[str] = Interned()  # URLs, field paths as text, reasons
        self._fields: Interned[tuple[str, FieldPath]] = Interned()
        self.texts.number("")

    def add(self, article: str | Path, refs: Iterable[LinkRef], sketch: Iterable[UnitSketch] = ()) -> None:
        """Store an article's refs and sketch (an article added again replaces both)."""
        values = ((r.field_path, r.url, r.normalized, r.invalid_reason, r.line, r.path) for r in refs)
        self.add_values(article, values, sketch)

    def add_values(
        self,
        article: str | Path,
        refs: Iterable[tuple[str, str, str | None, str, int | None, FieldPath]],
        sketch: Iterable[UnitSketch] = (),
    ) -> None:
        """``add`` of refs given as their values (field path, URL as written, normalized URL, invalid reason,
        line, field path tuple), as the read pass's entries hold them: no ``LinkRef`` made to be packed.
        Given its path's text, the table keeps that very string."""
        text, start = self.texts.number, len(self._packed) // _WIDTH
        # Looked up in place, a new value only through ``number``: every article of a large corpus comes
        # through here (on a warm night from its stored entry), and most of its values are known.
        known, fields = self.texts.numbers(), self._fields.numbers()
        for field_path, url, normalized, reason, line, path in refs:
            field = fields.get((field_path, path))
            if field is None:
                field = self._fields.number((self.texts.shared(field_path), path))
            same = _NONE
            if normalized is not None:
                same = n if (n := known.get(normalized)) is not None else text(normalized)
            self._packed.extend(
                (
                    field,
                    n if (n := known.get(url)) is not None else text(url),
                    same,
                    _NONE if line is None else line,
                    r if (r := known.get(reason)) is not None else text(reason),
                )
            )
        sketch_start = len(self._sketches)
        for unit in sketch:
            self._sketches.extend((unit.images_empty, len(unit.page_urls), len(unit.image_urls)))
            self._sketches.extend(
                n if (n := known.get(url)) is not None else text(url)
                for url in (*unit.page_urls, *unit.image_urls)
            )
        bounds = (start, len(self._packed) // _WIDTH)
        sketch_bounds = (sketch_start, len(self._sketches))
        name = os.fspath(article)
        number = self._articles.get(name)
        if number is None:
            self._articles[name] = len(self._names)
            self._names.append(name)
            self._bounds.extend(bounds)
            self._sketch_bounds.extend(sketch_bounds)
        else:
            self._bounds[2 * number : 2 * number + 2] = array("I", bounds)
            self._sketch_bounds[2 * number : 2 * number + 2] = array("I", sketch_bounds)

    def seal(self) -> None:
        """Every article is in: only decoding is left, so the tables' lookups go (about 60 bytes a value)."""
        self.texts.seal()
        self._fields.seal()

    def sketch(self, article: Path) -> tuple[UnitSketch, ...]:
        """The article's sketch, decoded."""
        return self._sketch(self._number(article))

    def _sketch(self, number: int) -> tuple[UnitSketch, ...]:
        at, stop = self._sketch_bounds[2 * number], self._sketch_bounds[2 * number + 1]
        texts, units = self.texts.values, []
        while at < stop:
            empty, pages, images = self._sketches[at : at + 3]
            urls = tuple(texts[n] for n in self._sketches[at + 3 : at + 3 + pages + images])
            units.append(UnitSketch(urls[:pages], urls[pages:], bool(empty)))
            at += 3 + pages + images
        return tuple(units)

    @property
    def sketches(self) -> Sketches:
        """Every article's sketch, as a mapping."""
        return Sketches(self)

    def ref(self, article: Path, index: int) -> LinkRef:
        """The article's ``index``-th reference (0-based, in document order), decoded."""
        number = self._number(article)
        start, stop = self._bounds[2 * number], self._bounds[2 * number + 1]
        if not 0 <= index < stop - start:
            raise IndexError("reference index out of range")
        at = (start + index) * _WIDTH
        field, url, normalized, line, reason = self._packed[at : at + _WIDTH]
        texts = self.texts.values
        field_path, path = self._fields.values[field]
        return LinkRef(
            article,
            field_path,
            texts[url],
            None if normalized == _NONE else texts[normalized],
            texts[reason],
            None if line == _NONE else line,
            path,
        )

    def normalized_urls(self, article: Path) -> list[str]:
        """The article's normalized URLs (invalid ones left out), read without decoding its ``LinkRef``s."""
        number = self._number(article)
        start, stop = self._bounds[2 * number] * _WIDTH, self._bounds[2 * number + 1] * _WIDTH
        texts = self.texts.values
        return [texts[n] for n in self._packed[start + 2 : stop : _WIDTH] if n != _NONE]

    def cited_urls(self, article: str | Path) -> list[tuple[str, FieldPath]]:
        """The article's normalized URLs (invalid ones left out), each with its field path as a tuple, read
        in place: what the overlapped check reads of every article, without a ``LinkRef`` each."""
        number = self._articles[os.fspath(article)]
        start, stop = self._bounds[2 * number] * _WIDTH, self._bounds[2 * number + 1] * _WIDTH
        texts, fields, packed = self.texts.values, self._fields.values, self._packed
        return [
            (texts[packed[at + 2]], fields[packed[at]][1])
            for at in range(start, stop, _WIDTH)
            if packed[at + 2] != _NONE
        ]

    def each_cited_urls(self) -> Iterator[list[tuple[str, FieldPath]]]:
        """``cited_urls`` of every article, in the order added (what the plan reads)."""
        return map(self.cited_urls, self._names)

    def named(self) -> set[str]:
        """Every distinct URL the articles name: normalized, or as written when it cannot be (the URL
        counts' ``urls``), read from the numbers without decoding a ref."""
        packed, numbers = self._packed, set[int]()
        for number in range(len(self._names)):
            start, stop = self._bounds[2 * number] * _WIDTH, self._bounds[2 * number + 1] * _WIDTH
            written, normalized = packed[start + 1 : stop : _WIDTH], packed[start + 2 : stop : _WIDTH]
            # Number 0 is "": ``normalized or url``, as for records.
            numbers.update(n if n != _NONE and n else w for w, n in zip(written, normalized, strict=True))
        texts = self.texts.values
        return {texts[n] for n in numbers}

    def citations(
        self,
    ) -> Iterator[tuple[str, list[tuple[str, str, str | None, str, int | None, FieldPath]]]]:
        """Each article's path text and its refs as (field path, URL as written, normalized URL, invalid
        reason, line, field path as a tuple), in the order added: what the plan and the report's index
        read, without a ``LinkRef`` each."""
        texts, fields, packed = self.texts.values, self._fields.values, self._packed
        for number, name in enumerate(self._names):
            start, stop = self._bounds[2 * number] * _WIDTH, self._bounds[2 * number + 1] * _WIDTH
            refs = []
            for at in range(start, stop, _WIDTH):
                field, url, normalized, line, reason = packed[at : at + _WIDTH]
                field_path, path = fields[field]
                refs.append(
                    (
                        field_path,
                        texts[url],
                        None if normalized == _NONE else texts[normalized],
                        texts[reason],
                        None if line == _NONE else line,
                        path,
                    )
                )
            yield name, refs

    def digest(self) -> str:
        """A digest of every article's path, refs and sketch: equal for the same corpus read again (the
        same articles in the same order: the numbers and the tables of values they stand for are equal)."""
        packed = hashlib.blake2b(digest_size=16)
        for values in (self._names, self.texts.values, self._fields.values):
            packed.update(len(values).to_bytes(8, "little"))
            # A slice at a time: one repr of a whole column would be a string the size of the corpus's
            # paths and URLs (40 MB at 200,000 articles), on the warm nights issue 13 bounds.
            for start in range(0, len(values), _DIGEST_SLICE):
                packed.update(repr(values[start : start + _DIGEST_SLICE]).encode("utf-8", "surrogatepass"))
        for numbers in (self._bounds, self._packed, self._sketch_bounds, self._sketches):
            packed.update(len(numbers).to_bytes(8, "little") + numbers.tobytes())
        return packed.hexdigest()

    def count(self, article: Path) -> int:
        """How many references the article has."""
        number = self._number(article)
        return self._bounds[2 * number + 1] - self._bounds[2 * number]

    def _number(self, article: Path) -> int:
        return self._articles[os.fspath(article)]

    @property
    def paths(self) -> ArticlePaths:
        """The articles' paths, in the order added (each a new ``Path`` when read)."""
        return ArticlePaths(self._names)

    def __getitem__(self, article: Path) -> ArticleRefs:
        if article not in self:
            raise KeyError(article)
        return ArticleRefs(self, article)

    def __contains__(self, article: object) -> bool:
        return isinstance(article, PurePath) and os.fspath(article) in self._articles

    def __iter__(self) -> Iterator[Path]:
        return map(Path, self._names)

    def __len__(self) -> int:
        return len(self._articles)

    def __repr__(self) -> str:
        return f"RefTable({len(self)} articles, {len(self._packed) // _WIDTH} refs)"


class ArticleRefs(Sequence[LinkRef]):
    """One article's refs in a ``RefTable``, read in place; equal to a list or tuple of equal refs."""

    __slots__ = ("_article", "_count", "_table")

    def __init__(self, table: RefTable, article: Path) -> None:
        self._table, self._article = table, article
        self._count = table.count(article)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> LinkRef: ...

    @overload
    def __getitem__(self, index: slice) -> list[LinkRef]: ...

    def __getitem__(self, index: int | slice) -> LinkRef | list[LinkRef]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        return self._table.ref(self._article, index + self._count if index < 0 else index)

    def __iter__(self) -> Iterator[LinkRef]:
        for index in range(self._count):
            yield self._table.ref(self._article, index)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArticleRefs | list | tuple):
            return NotImplemented
        return len(other) == self._count and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


class Sketches(Mapping[Path, tuple[UnitSketch, ...]]):
    """The sketches of a ``RefTable``'s articles, decoded on access."""

    __slots__ = ("_table",)

    def __init__(self, table: RefTable) -> None:
        self._table = table

    def __getitem__(self, article: Path) -> tuple[UnitSketch, ...]:
        if article not in self._table:
            raise KeyError(article)
        return self._table.sketch(article)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._table)

    def each(self) -> Iterator[tuple[UnitSketch, ...]]:
        """Every article's sketch in the order added (``values()`` without a ``Path`` made and looked up
        for each: image planning reads every article's)."""
        table = self._table
        return map(table._sketch, range(len(table)))

    def __len__(self) -> int:
        return len(self._table)


class ArticlePaths(Sequence[Path]):
    """A ``RefTable``'s article paths by number; equal to a list or tuple of equal paths."""

    __slots__ = ("_names",)

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...

    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [Path(name) for name in self._names[index]]
        return Path(self._names[index])

    def __iter__(self) -> Iterator[Path]:
        return map(Path, self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArticlePaths | list | tuple):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))
