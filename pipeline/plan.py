"""The plan of a run: the unique URLs the corpus names, which are pages and images, which are excluded.

Reads: every article's refs (from the read pass), the link filter and ``links.fields``, ``links.page_fields``,
``links.nested``. Returns: a :class:`Plan` and the one definition of each URL count (:class:`Counts`);
prints the dry-run plan. Pure but for the printing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pipeline.config import Settings
from pipeline.ignore import LinkFilter
from pipeline.models import FieldPath, LinkRef, field_spec, host_key
from pipeline.text import printable

Refs = Mapping[Path, Sequence[LinkRef]]  # every article read -> its URL references, in document order
# A ref as plain values: field path, URL as written, normalized URL, invalid reason, line, field path tuple.
Cited = tuple[str, str, str | None, str, int | None, FieldPath]


def citations(refs: Refs) -> Iterator[tuple[object, Iterable[Cited]]]:
    """Each article (its path, or its path's text) and its refs as plain tuples: read in place from a
    table that offers them (the read pass's ``RefTable.citations``: no ``LinkRef`` made per ref), else
    from the records."""
    table: Callable[[], Iterator[tuple[object, Iterable[Cited]]]] | None = getattr(refs, "citations", None)
    if table is not None:
        yield from table()
        return
    for article, cited in refs.items():
        yield article, ((r.field_path, r.url, r.normalized, r.invalid_reason, r.line, r.path) for r in cited)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the check stage is asked for: unique URLs, which are pages and images, which are excluded."""

    urls: list[str]  # unique, in first-seen order
    page_urls: set[str]  # read whole (head) for metadata
    image_urls: set[str]  # first bytes read for the real size
    excluded: dict[str, str]  # URL -> the rule that skipped it


@dataclass(frozen=True, slots=True)
class Counts:
    """The one definition of each URL count: the plan, the log lines and the report all use these.

    ``urls`` is every unique URL the corpus names (valid, excluded and invalid alike; the report's
    ``totals.urls``), and ``due + not_due + excluded + invalid == urls``. ``extra`` URLs are re-checked
    only to judge our own network (baseline hosts, canaries) and are not part of ``urls``.
    """

    urls: int
    due: int
    not_due: int
    excluded: int
    invalid: int
    extra: int


def _named(refs: Refs) -> set[str]:
    """Every distinct URL the corpus names (normalized, else as written): read from the read pass's
    ``RefTable`` in place when it is one."""
    table: Callable[[], set[str]] | None = getattr(refs, "named", None)
    if table is not None:
        return table()
    return {normalized or url for _, cited in citations(refs) for _, url, normalized, *_ in cited}


def _cited_urls(refs: Refs) -> Iterator[Iterable[tuple[str, FieldPath]]]:
    """Each article's normalized URLs (invalid ones left out) with their field paths, in order: read in
    place from a ``RefTable`` (``each_cited_urls``), else from the records."""
    table: Callable[[], Iterator[Iterable[tuple[str, FieldPath]]]] | None = getattr(
        refs, "each_cited_urls", None
    )
    if table is not None:
        yield from table()
        return
    for cited in refs.values():
        yield [(r.normalized, r.path) for r in cited if r.normalized is not None]


def counts(refs: Refs, plan: Plan, due: list[str], extra: Iterable[str]) -> Counts:
    named = _named(refs)
    valid = set(plan.urls) | set(plan.excluded)
    due_set = set(due)
    return Counts(
        urls=len(named),
        due=len(due_set),
        not_due=len(set(plan.urls) - due_set),
        excluded=len(plan.excluded),
        invalid=len(named - valid),
        extra=len(set(extra) - due_set),
    )


def _unit_field(path: FieldPath, nested: Iterable[str]) -> str:
    """``related[2].images[0].url`` -> ``images[].url``; ``related[2].webUrl`` -> ``webUrl``."""
    if len(path) > 2 and path[0] in set(nested) and isinstance(path[1], int):
        path = path[2:]
    return field_spec(path)


class Roles:
    """Whether a reference's field makes its URL a page (read for metadata) or an image (probed)."""

    def __init__(self, settings: Settings) -> None:
        self._nested = settings.links.nested
        self._pages = set(settings.links.page_fields)
        self._images = {spec for spec in settings.links.fields if "[]." in spec}
        self._known: dict[FieldPath, str | None] = {}

    def of(self, ref: LinkRef) -> str | None:
        """``page``, ``image`` or None (checked only); a URL that is a page anywhere is a page."""
        return self.of_path(ref.path)

    def of_path(self, path: FieldPath) -> str | None:
        """The role of a ref at this field path (``of``), worked out once a field path: a corpus repeats a
        few of them in every article."""
        if path in self._known:
            return self._known[path]
        kind = _unit_field(path, self._nested)
        role = "page" if kind in self._pages else "image" if kind in self._images else None
        self._known[path] = role
        return role


def plan_requests(refs: Refs, settings: Settings, rules: LinkFilter) -> Plan:
    """Unique URLs to consider, which of them are pages and images, and the excluded ones."""
    roles = Roles(settings)
    plan = Plan([], set(), set(), {})
    seen: set[str] = set()
    for cited in _cited_urls(refs):
        for url, path in cited:
            if url in plan.excluded:
                continue
            skip = rules.skip_reason(url) if url not in seen else None
            if skip is not None:
                plan.excluded[url] = skip
                continue
            if url not in seen:
                seen.add(url)
                plan.urls.append(url)
            role = roles.of_path(path)
            if role == "page":
                plan.page_urls.add(url)
            elif role == "image":
                plan.image_urls.add(url)
    plan.image_urls.difference_update(plan.page_urls)
    return plan


def print_plan(out: TextIO, plan: Plan, due: list[str], refs: Refs, counts: Counts) -> None:
    """The dry run's plan: every URL it would check, skip or cannot request, by article count and host."""
    invalid = [ref for refs in refs.values() for ref in refs if ref.normalized is None]
    out.write(
        f"plan: {len(refs)} articles, {counts.urls} unique URLs on "
        f"{len({host_key(u) for u in plan.urls})} hosts; {counts.due} due for a check, "
        f"{counts.not_due} not due, {counts.excluded} excluded, {counts.invalid} invalid\n"
    )
    due_set = set(due)
    for url in plan.urls:
        out.write(f"  {'check' if url in due_set else 'fresh'}  {printable(url)}\n")
    for url in sorted(plan.excluded):
        out.write(f"  skip   {printable(url)}\n")
    for ref in invalid:
        out.write(printable(f"  invalid {ref.article}: {ref.field_path}: {ref.invalid_reason}") + "\n")
