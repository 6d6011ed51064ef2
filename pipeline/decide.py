"""Pure decisions: article + link verdicts + page metadata + image probes -> front-matter edits.

Reads: an article's front-matter data and refs, the run's ``Evidence``, ``settings.metadata``,
``settings.links`` and ``settings.health`` (flag_field, flag). Returns: a ``Decision`` (edits for the faithful
writer, the changes to report, and discoveries that are reported but not written).

Policies (each configurable, defaults in parentheses):
- excerpt (fill): filled when missing, empty or null; with ``overwrite`` also replaced when the page's
  description differs; never replaced by a description shorter than ``min_length``.
- excerpt text is bounded: control characters and U+FFFD removed, whitespace folded, at most
  ``max_length`` characters (cut at a word boundary); a body paragraph is used only with ``from_body``.
- images (replace-dead): a *dead* image (dead by the link-health verdict, across runs) is replaced by the
  page's current share image if that image probed alive; with ``refresh`` the first image is also replaced
  when the share image differs from it and probed alive with its size; a missing or empty list is filled;
  an alive image stays, only its width/height are corrected to the probed size. A side above
  ``MAX_IMAGE_PX`` is never written; a body image is used only with ``from_body``.
- canonical / AMP URLs: reported; written only when opted in.
- link-health flags: a ``linkHealth`` block lists each dead field; an entry goes away only on evidence of
  recovery (ok/redirected) or when the field no longer holds that URL. Nothing changes in an outage run.
Only pages whose verdict is ok/redirected and that do not look like an error page supply metadata
(the runner filters ``Evidence.pages`` accordingly).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.extract import BODY, MIN_IMAGE_PX
from pipeline.flags import _decide_flags
from pipeline.links import normalize_url
from pipeline.models import (
    ALIVE,
    Change,
    Edit,
    Evidence,
    FieldPath,
    ImageProbe,
    LinkRef,
    LinkResult,
    LinkStatus,
    PageMeta,
    SetValue,
    format_field_path,
)
from pipeline.text import bounded_text, fold

MAX_IMAGE_PX = 20_000  # no real image is larger on a side; such a size is a parse error or a hostile header
BODY_SOURCE = BODY  # PageMeta.sources value of a field read from the page's body, not its declared tags
MIN_BODY_IMAGE_PX = MIN_IMAGE_PX  # a body image narrower than this (probed) is not used


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write into one article, and what to tell the maintainer."""

    edits: tuple[Edit, ...] = ()
    changes: tuple[Change, ...] = ()
    discovered: tuple[Change, ...] = ()  # canonical/AMP URLs found but not written


def _norm(url: object) -> str | None:
    return normalize_url(url)[0] if isinstance(url, str) else None


def _sane_px(value: int | None) -> bool:
    return value is not None and 0 < value <= MAX_IMAGE_PX


def units(data: Mapping[str, Any], settings: Settings) -> Iterator[tuple[FieldPath, Mapping[str, Any]]]:
    """The article itself and every item of the nested lists (``related[]``): each is refreshed alike."""
    yield (), data
    for list_key in settings.links.nested:
        items = data.get(list_key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, Mapping):
                    yield (list_key, index), item


def page_meta(unit: Mapping[str, Any], evidence: Evidence, settings: Settings) -> tuple[str, PageMeta] | None:
    """The unit's page (its first page field that is alive and was read), as (url as written, metadata)."""
    for name in settings.links.page_fields:
        url = unit.get(name)
        normalized = _norm(url)
        if normalized is None:
            continue
        result = evidence.results.get(normalized)
        meta = evidence.pages.get(normalized)
        if result is not None and result.status in ALIVE and meta is not None:
            return str(url), meta
    return None


def _share_image(meta: PageMeta, settings: Settings) -> str | None:
    if not meta.images:
        return None
    if meta.sources.get("image") == BODY_SOURCE and not settings.metadata.images.from_body:
        return None
    return meta.images[0].url


@dataclass(frozen=True, slots=True)
class UnitSketch:
    """What image planning needs of one unit, small enough to keep for every article of a corpus."""

    page_urls: tuple[str, ...]  # normalized URLs of its page fields, in priority order
    image_urls: tuple[str, ...]  # normalized URLs of its images
    images_empty: bool  # images missing, null or []


def sketch(data: Mapping[str, Any], settings: Settings) -> tuple[UnitSketch, ...]:
    """Sketch every unit of an article (read pass), so that articles need not stay in memory."""
    out = []
    for _, unit in units(data, settings):
        pages = (_norm(unit.get(name)) for name in settings.links.page_fields)
        images = unit.get("images")
        image_urls = (
            (_norm(i.get("url")) for i in images or [] if isinstance(i, Mapping))
            if isinstance(images, list)
            else ()
        )
        images_empty = images is None or images == []
        out.append(
            UnitSketch(
                tuple(url for url in pages if url),
                tuple(url for url in image_urls if url),
                images_empty,
            )
        )
    return tuple(out)


def stale_flags(data: Mapping[str, Any], refs: Sequence[LinkRef], settings: Settings) -> bool:
    """Whether the article's link-health block names a field that no longer holds that URL (to clean up)."""
    block = data.get(settings.health.flag_field)
    if not isinstance(block, list):
        return False
    current = {(ref.field_path, ref.url) for ref in refs}
    return any(isinstance(e, Mapping) and (e.get("field"), e.get("url")) not in current for e in block)


def image_candidates(sketches: Sequence[UnitSketch], evidence: Evidence, settings: Settings) -> set[str]:
    """Share-image URLs (normalized) that must be probed before ``decide`` can replace or fill images."""
    wanted: set[str] = set()
    if settings.metadata.images.policy == "never" or evidence.outage:
        return wanted
    refresh = settings.metadata.images.policy == "refresh"
    for unit in sketches:
        needs_fill = settings.metadata.images.fill_missing and unit.images_empty
        dead = any(_dead(evidence.results.get(url)) for url in unit.image_urls)
        if not (needs_fill or dead or (refresh and not unit.images_empty)):
            continue  # the common case: nothing to fill, replace or follow; no page decoded for it
        meta = next(
            (
                evidence.pages[url]
                for url in unit.page_urls
                if url in evidence.pages and _alive(evidence.results.get(url))
            ),
            None,
        )
        if meta is None:
            continue
        may_refresh = refresh and meta.sources.get("image") != BODY_SOURCE and not unit.images_empty
        if not (needs_fill or dead or may_refresh):
            continue  # nothing to follow: no URL normalized for it
        normalized = _norm(_share_image(meta, settings))
        if normalized is not None and (needs_fill or dead or unit.image_urls[:1] != (normalized,)):
            wanted.add(normalized)
    return wanted


def _alive(result: LinkResult | None) -> bool:
    return result is not None and result.status in ALIVE


def _dead(result: LinkResult | None) -> bool:
    return result is not None and result.status is LinkStatus.DEAD


def _needs_fill(images: object, settings: Settings) -> bool:
    return settings.metadata.images.fill_missing and (images is None or images == [])


def _status(item: Mapping[str, Any], evidence: Evidence) -> LinkStatus | None:
    normalized = _norm(item.get("url"))
    result = evidence.results.get(normalized) if normalized else None
    return result.status if result else None


def fingerprint(refs: Sequence[LinkRef], evidence: Evidence, settings_key: str) -> str:
    """A digest of everything ``decide`` reads about an article besides its own bytes.

    Equal digests for an unchanged file mean an equal decision, so the runner may skip re-reading it:
    each ref's verdict, the page metadata, probes and archive copy of its URL, the probe of that page's
    share image (``url_evidence``), the outage flag, and the settings (``settings_key``).
    """
    parts: list[object] = [settings_key, evidence.outage]
    for ref in sorted(refs, key=lambda r: (r.field_path, r.url)):
        url = ref.normalized
        if url is None:
            parts.append((ref.field_path, ref.url))
            continue
        parts.append((ref.field_path, url, *url_evidence(url, evidence)))
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def url_evidence(url: str, evidence: Evidence) -> tuple[object, ...]:
    """What ``decide`` reads about one normalized URL, whichever article cites it: its verdict, its page's
    metadata (the same whether read tonight or stored), its probe, its page's share-image probe, its
    archive copy."""
    result = evidence.results.get(url)
    meta = evidence.pages.get(url)
    share = meta.images[0].url if meta is not None and meta.images else None
    page = None
    if meta is not None:
        sources = (meta.sources.get("description"), meta.sources.get("image"))
        page = (meta.description, share, sources, meta.canonical, meta.amp)
    return (
        (result.status, result.first_failed_at) if result else None,
        page,
        _probe_key(evidence.probes.get(url)),
        _probe_key(_probe_of(share, evidence)) if share else None,
        evidence.archive.get(url),
    )


def _probe_of(url: str, evidence: Evidence) -> ImageProbe | None:
    """The probe of an image URL as written, found under its normalized form. A URL that is a key is
    already normalized (normalizing is idempotent): found without normalizing it, once for every page."""
    probe = evidence.probes.get(url)
    return probe if probe is not None else evidence.probes.get(_norm(url) or "")


def url_digest(url: str, evidence: Evidence) -> str:
    """``url_evidence`` as a short digest, kept in the history to tell which URLs' evidence changed."""
    return hashlib.blake2b(repr(url_evidence(url, evidence)).encode(), digest_size=8).hexdigest()


def _probe_key(probe: ImageProbe | None) -> tuple[str, bool, int | None, int | None] | None:
    return (probe.url, probe.alive, probe.width, probe.height) if probe is not None else None


def decide(
    article: str, data: Mapping[str, Any], refs: Sequence[LinkRef], evidence: Evidence, settings: Settings
) -> Decision:
    """Every edit this article needs: metadata refresh for each unit, then the link-health block."""
    edits: list[Edit] = []
    changes: list[Change] = []
    discovered: list[Change] = []

    def set_value(path: FieldPath, old: object, new: object, source: str, via: str = "") -> None:
        edits.append(SetValue(path, new))
        changes.append(Change(article, format_field_path(path), old, new, source, via))

    if settings.metadata.enabled and not evidence.outage:
        for prefix, unit in units(data, settings):
            found = page_meta(unit, evidence, settings)
            if found is None:
                continue
            page_url, meta = found
            _decide_excerpt(prefix, unit, meta, page_url, settings, set_value)
            _decide_images(prefix, unit, meta, page_url, evidence, settings, set_value)
            _decide_discoveries(article, prefix, unit, meta, page_url, settings, set_value, discovered)

    if settings.health.flag and not evidence.outage:
        # A dead URL that the refresh just replaced is no longer in the article: nothing to flag.
        replaced = {change.field_path for change in changes}
        live_refs = [ref for ref in refs if ref.field_path not in replaced]
        _decide_flags(article, data, live_refs, evidence, settings, edits, changes)
    return Decision(tuple(edits), tuple(changes), tuple(discovered))


def _decide_excerpt(
    prefix: FieldPath,
    unit: Mapping[str, Any],
    meta: PageMeta,
    page_url: str,
    settings: Settings,
    set_value: Any,
) -> None:
    policy = settings.metadata.excerpt
    if meta.sources.get("description") == BODY_SOURCE and not policy.from_body:
        return
    description = bounded_text(meta.description or "", policy.max_length)
    if policy.policy == "never" or len(description) < max(policy.min_length, 1):
        return
    current = unit.get("excerpt")
    empty = current is None or (isinstance(current, str) and not current.strip())
    # A body paragraph only fills a gap: it never overwrites an excerpt someone wrote or the page declared.
    overwrite = policy.policy == "overwrite" and meta.sources.get("description") != BODY_SOURCE
    # An excerpt that already holds the page's text, cut by us or whole, is current: never rewritten.
    whole = bounded_text(meta.description or "", len(meta.description or ""))
    if empty or (overwrite and fold(str(current)) not in (description, whole)):
        set_value((*prefix, "excerpt"), current, description, page_url, meta.sources.get("description", ""))


def _decide_images(
    prefix: FieldPath,
    unit: Mapping[str, Any],
    meta: PageMeta,
    page_url: str,
    evidence: Evidence,
    settings: Settings,
    set_value: Any,
) -> None:
    policy = settings.metadata.images
    if policy.policy == "never":
        return
    share = _share_image(meta, settings)
    share_probe = evidence.probes.get(_norm(share) or "") if share else None
    share_ok = share is not None and share_probe is not None and share_probe.alive
    if share_ok and share_probe is not None and meta.sources.get("image") == BODY_SOURCE:
        # A body image is only a fallback: it must really be a picture, not a button or an icon.
        share_ok = (share_probe.width or 0) >= MIN_BODY_IMAGE_PX
    images = unit.get("images")

    if _needs_fill(images, settings):
        if share_ok and share_probe is not None:
            new_item: dict[str, Any] = {"url": share}
            if _sane_px(share_probe.width) and _sane_px(share_probe.height):
                new_item.update(width=share_probe.width, height=share_probe.height)
            set_value((*prefix, "images"), images, [new_item], page_url, meta.sources.get("image", ""))
        return
    if not isinstance(images, list):
        return

    for index, item in enumerate(images):
        if not isinstance(item, Mapping):
            continue
        path = (*prefix, "images", index)
        if (
            index == 0
            and policy.policy == "refresh"
            and meta.sources.get("image") != BODY_SOURCE  # a body image fills gaps, never replaces
            and share_ok
            and share_probe is not None
            and _sane_px(share_probe.width)
            and _sane_px(share_probe.height)
            and _norm(share) != _norm(item.get("url"))
        ):
            # The page now shares another image: follow it, keeping the item's other keys (isCached …).
            set_value((*path, "url"), item.get("url"), share, page_url, meta.sources.get("image", ""))
            _set_size(path, item, share_probe, set_value, page_url)
            continue
        if _status(item, evidence) is LinkStatus.DEAD:
            if share_ok and share_probe is not None and _norm(share) != _norm(item.get("url")):
                set_value((*path, "url"), item.get("url"), share, page_url, meta.sources.get("image", ""))
                _set_size(path, item, share_probe, set_value, page_url)
            continue
        probe = evidence.probes.get(_norm(item.get("url")) or "")
        if probe is not None and probe.alive and policy.correct_size:
            _set_size(path, item, probe, set_value, probe.url)


def _set_size(
    path: FieldPath, item: Mapping[str, Any], probe: ImageProbe, set_value: Any, source: str
) -> None:
    if not (_sane_px(probe.width) and _sane_px(probe.height)):
        return
    for key, real in (("width", probe.width), ("height", probe.height)):
        if item.get(key) != real:
            set_value((*path, key), item.get(key), real, source)


def _decide_discoveries(
    article: str,
    prefix: FieldPath,
    unit: Mapping[str, Any],
    meta: PageMeta,
    page_url: str,
    settings: Settings,
    set_value: Any,
    discovered: list[Change],
) -> None:
    wanted = (
        ("canonicalUrl", meta.canonical, settings.metadata.write_canonical),
        ("ampWebUrl", meta.amp, settings.metadata.write_amp),
    )
    for key, found, write in wanted:
        current = unit.get(key)
        if not found or _norm(found) is None or _norm(found) == _norm(current):
            continue
        if key == "canonicalUrl" and _norm(found) == _norm(page_url):
            continue  # a page that names itself as canonical tells us nothing new
        if write:
            set_value((*prefix, key), current, found, page_url)
        else:
            discovered.append(Change(article, format_field_path((*prefix, key)), current, found, page_url))
