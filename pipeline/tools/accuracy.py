"""Score the extractor on saved pages with known metadata: ``pipeline accuracy PAGES_JSON [--dump FILE]``.

Reads: a JSON list of pages (``/work/shared/corpora/pages.json`` format): ``file`` (relative to the list),
``url``, ``source`` and ``expected`` (any of ``title``, ``description``, ``excerpt``, ``image``,
``canonical``, ``amp``, ``site_name``, ``published``; ``null`` or empty when the page has none).
Returns: prints accuracy per source and field, and with ``dump`` writes one JSON line per page (``file``,
``title``, ``description``, ``image``, ``canonical``, ``amp``) so anyone can score the extractor.
Settings: none.

Scoring: a field counts only on pages that expect a value for it. Text is compared after folding whitespace
and treating straight/curly quotes and ``...``/``…`` alike; URLs after resolving both against the page URL;
``excerpt`` is scored against our description. A page list may mark each expected value's ``kinds``
(``declared``: a tag the page declares; ``algorithmic``: the source's own fallback, such as
openGraphScraper's first ``<img>``); those are also scored apart, as ``description[declared]`` rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from pipeline.extract.html import scrape
from pipeline.models import ExitCode, PageMeta

__all__ = ["FieldScore", "fold", "run_accuracy", "score_pages"]

_FIELDS = ("title", "description", "excerpt", "image", "canonical", "amp", "site_name", "published")
_URL_FIELDS = frozenset({"image", "canonical", "amp"})
_FOLD = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"'})


@dataclass
class FieldScore:
    """Matches of one field over the pages of one source that expect a value for it."""

    matched: int = 0
    expected: int = 0
    misses: list[str] = field(default_factory=list)  # page files, for people

    @property
    def percent(self) -> float:
        return 100.0 * self.matched / self.expected if self.expected else 0.0


def fold(text: str) -> str:
    """Text as compared: whitespace folded, curly quotes straightened, an ellipsis written as three dots."""
    return " ".join(text.translate(_FOLD).replace("…", "...").split())


def _extracted(meta: PageMeta, name: str) -> str | None:
    if name == "image":
        return meta.images[0].url if meta.images else None
    value = getattr(meta, "description" if name == "excerpt" else name)
    return value if isinstance(value, str) else None


def _same(name: str, expected: str, got: str | None, page_url: str) -> bool:
    if got is None:
        return False
    if name in _URL_FIELDS:
        return urljoin(page_url, expected.strip()) == urljoin(page_url, got)
    return fold(expected) == fold(got)


def score_pages(pages_json: Path) -> tuple[dict[tuple[str, str], FieldScore], list[dict[str, object]]]:
    """Scrape every listed page; return scores keyed by (source, field) and one dump record per page."""
    pages = json.loads(pages_json.read_text(encoding="utf-8"))
    scores: dict[tuple[str, str], FieldScore] = defaultdict(FieldScore)
    dump: list[dict[str, object]] = []
    for page in pages:
        body = (pages_json.parent / page["file"]).read_bytes()
        meta = scrape(body, page.get("url") or "")
        source = str(page.get("source", "")).split(" ")[0] or "pages"
        kinds = page.get("kinds") or {}
        for name, expected in page.get("expected", {}).items():
            if name not in _FIELDS or not expected:
                continue
            hit = _same(name, expected, _extracted(meta, name), page.get("url") or "")
            keys = [(source, name)]
            if kinds.get(name):
                keys.append((source, f"{name}[{kinds[name]}]"))
            for key in keys:
                score = scores[key]
                score.expected += 1
                if hit:
                    score.matched += 1
                else:
                    score.misses.append(page["file"])
        dump.append(
            {
                "file": page["file"],
                "title": meta.title,
                "description": meta.description,
                "image": meta.images[0].url if meta.images else None,
                "canonical": meta.canonical,
                "amp": meta.amp,
            }
        )
    return scores, dump


def _order(name: str) -> tuple[int, str]:
    """Rows of one field together: the total, then its ``[algorithmic]`` and ``[declared]`` rows."""
    return _FIELDS.index(name.partition("[")[0]), name


def run_accuracy(pages_json: Path, dump: Path | None = None) -> int:
    """Print accuracy per source and field for the pages listed in ``pages_json``; write ``dump`` if given."""
    scores, records = score_pages(pages_json)
    print(f"{'source':<26} {'field':<24} {'matched':>8} {'expected':>8} {'accuracy':>9}")
    totals: dict[str, FieldScore] = defaultdict(FieldScore)
    for (source, name), score in sorted(scores.items(), key=lambda item: (item[0][0], _order(item[0][1]))):
        print(f"{source:<26} {name:<24} {score.matched:>8} {score.expected:>8} {score.percent:>8.1f}%")
        totals[name].matched += score.matched
        totals[name].expected += score.expected
    for name in sorted(totals, key=_order):
        total = totals[name]
        print(f"{'all':<26} {name:<24} {total.matched:>8} {total.expected:>8} {total.percent:>8.1f}%")
    if dump is not None:
        with dump.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return int(ExitCode.OK)
