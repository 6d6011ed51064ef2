"""Update policy and link-health flags: pure decisions on inline data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.configfile import parse_settings
from pipeline.decide import decide, image_candidates, sketch
from pipeline.links import extract_refs
from pipeline.models import (
    Evidence,
    ImageMeta,
    ImageProbe,
    LinkResult,
    LinkStatus,
    PageMeta,
    Remove,
    SetValue,
)

PAGE = "https://news.example/story"
OLD_IMG = "https://img.example/old.jpg"
NEW_IMG = "https://img.example/new.jpg"
DESCRIPTION = "A description long enough to be useful as an excerpt for this story."
SINCE = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _article(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"title": "t", "webUrl": PAGE}
    data.update(extra)
    return data


def _evidence(
    statuses: dict[str, LinkStatus],
    meta: PageMeta | None = None,
    probes: dict[str, ImageProbe] | None = None,
    outage: bool = False,
) -> Evidence:
    results = {
        url: LinkResult(url, status, first_failed_at=SINCE if status is LinkStatus.DEAD else None)
        for url, status in statuses.items()
    }
    return Evidence(results, {PAGE: meta} if meta else {}, probes or {}, outage)


def _decide(data: dict[str, Any], evidence: Evidence, settings: Settings | None = None) -> Any:
    settings = settings or Settings()
    refs = extract_refs(Path("a.md"), data, settings.links)
    return decide("a.md", data, refs, evidence, settings)


def _meta(description: str | None = DESCRIPTION, image: str | None = NEW_IMG, **kw: Any) -> PageMeta:
    images = (ImageMeta(image),) if image else ()
    return PageMeta(PAGE, description=description, images=images, **kw)


def test_empty_excerpt_is_filled_from_the_page() -> None:
    """A missing, empty or null excerpt is filled with the page's description."""
    for current in ({}, {"excerpt": ""}, {"excerpt": None}):
        decision = _decide(_article(**current), _evidence({PAGE: LinkStatus.OK}, _meta(image=None)))
        assert decision.edits == (SetValue(("excerpt",), DESCRIPTION),)
        assert decision.changes[0].source == PAGE


def test_existing_excerpt_is_kept_by_default() -> None:
    """With the default `fill` policy an editor's excerpt is never replaced."""
    decision = _decide(
        _article(excerpt="Editor's words"), _evidence({PAGE: LinkStatus.OK}, _meta(image=None))
    )
    assert decision.edits == ()


def test_overwrite_policy_replaces_a_changed_excerpt_but_never_with_a_short_one() -> None:
    """`overwrite` replaces a differing excerpt; a too-short description never replaces anything."""
    settings = parse_settings({"metadata": {"excerpt": {"policy": "overwrite"}}})
    data = _article(excerpt="Old words")
    assert _decide(data, _evidence({PAGE: LinkStatus.OK}, _meta(image=None)), settings).edits == (
        SetValue(("excerpt",), DESCRIPTION),
    )
    short = _meta(description="Too short", image=None)
    assert _decide(data, _evidence({PAGE: LinkStatus.OK}, short), settings).edits == ()


def test_failing_or_blocked_page_supplies_nothing() -> None:
    """Only an ok/redirected page supplies metadata."""
    for status in (LinkStatus.FAILING, LinkStatus.BLOCKED, LinkStatus.DEAD):
        decision = _decide(_article(), _evidence({PAGE: status}, _meta(image=None)))
        assert not [e for e in decision.edits if e.path == ("excerpt",)]


def test_dead_image_is_replaced_by_the_probed_share_image() -> None:
    """A dead image gets the page's share image with its real size; other keys stay."""
    data = _article(excerpt="e", images=[{"url": OLD_IMG, "width": 10, "height": 10, "isCached": True}])
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 1200, 630)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.DEAD}, _meta(), probes)
    assert image_candidates(sketch(data, Settings()), evidence, Settings()) == {NEW_IMG}
    decision = _decide(data, evidence)
    assert decision.edits[:3] == (
        SetValue(("images", 0, "url"), NEW_IMG),
        SetValue(("images", 0, "width"), 1200),
        SetValue(("images", 0, "height"), 630),
    )


def test_failing_image_is_not_replaced() -> None:
    """An image that failed but is not yet dead stays: no churn on one bad night."""
    data = _article(excerpt="e", images=[{"url": OLD_IMG, "width": 10, "height": 10}])
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 1200, 630)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.FAILING}, _meta(), probes)
    assert image_candidates(sketch(data, Settings()), evidence, Settings()) == set()
    assert _decide(data, evidence).edits == ()


def test_dead_image_is_kept_when_the_replacement_is_not_alive() -> None:
    """No replacement unless the new share image probed alive."""
    data = _article(excerpt="e", images=[{"url": OLD_IMG}])
    probes = {NEW_IMG: ImageProbe(NEW_IMG, False, "text/html", reason="not an image")}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.DEAD}, _meta(), probes)
    assert [e for e in _decide(data, evidence).edits if e.path[0] == "images"] == []


def test_alive_image_size_is_corrected() -> None:
    """An alive image stays; only a wrong width/height is corrected."""
    data = _article(excerpt="e", images=[{"url": OLD_IMG, "width": 1200, "height": 800}])
    probes = {OLD_IMG: ImageProbe(OLD_IMG, True, "image/jpeg", 1200, 799)}
    decision = _decide(data, _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(), probes))
    assert decision.edits == (SetValue(("images", 0, "height"), 799),)


def test_missing_images_are_filled() -> None:
    """An article with no images gets the page's probed share image."""
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/png", 800, 600)}
    decision = _decide(_article(excerpt="e"), _evidence({PAGE: LinkStatus.OK}, _meta(), probes))
    assert decision.edits == (SetValue(("images",), [{"url": NEW_IMG, "width": 800, "height": 600}]),)


def test_related_items_are_refreshed_like_the_top() -> None:
    """Each related[] item is its own unit with its own page."""
    data = {"title": "t", "related": [{"webUrl": PAGE, "excerpt": None}]}
    decision = _decide(data, _evidence({PAGE: LinkStatus.OK}, _meta(image=None)))
    assert decision.edits == (SetValue(("related", 0, "excerpt"), DESCRIPTION),)
    assert decision.changes[0].field_path == "related[0].excerpt"


def test_amp_and_canonical_are_reported_not_written_by_default() -> None:
    """Discovered AMP/canonical URLs are reported; writing them is opt-in."""
    meta = _meta(image=None, amp="https://news.example/story/amp", canonical="https://news.example/canonical")
    decision = _decide(_article(excerpt="e"), _evidence({PAGE: LinkStatus.OK}, meta))
    assert decision.edits == ()
    assert {c.field_path for c in decision.discovered} == {"ampWebUrl", "canonicalUrl"}
    settings = parse_settings({"metadata": {"write_amp": True}})
    decision = _decide(_article(excerpt="e"), _evidence({PAGE: LinkStatus.OK}, meta), settings)
    assert decision.edits == (SetValue(("ampWebUrl",), "https://news.example/story/amp"),)


def test_dead_link_is_flagged_with_since() -> None:
    """A dead field gets an entry in the linkHealth block, dated by its first failure."""
    decision = _decide(_article(excerpt="e"), _evidence({PAGE: LinkStatus.DEAD}))
    assert decision.edits == (
        SetValue(
            ("linkHealth",), [{"field": "webUrl", "url": PAGE, "status": "dead", "since": "2026-11-01"}]
        ),
    )


def test_flag_stays_without_evidence_and_goes_on_recovery() -> None:
    """An entry stays while the link is failing or unknown, and is removed when it is ok again."""
    entry = {"field": "webUrl", "url": PAGE, "status": "dead", "since": "2026-10-01"}
    data = _article(excerpt="e", linkHealth=[entry])
    assert _decide(data, _evidence({PAGE: LinkStatus.DEAD})).edits == ()
    assert _decide(data, _evidence({PAGE: LinkStatus.FAILING})).edits == ()
    assert _decide(data, _evidence({})).edits == ()
    assert _decide(data, _evidence({PAGE: LinkStatus.OK})).edits == (Remove(("linkHealth",)),)


def test_outage_changes_nothing() -> None:
    """In an outage run no flag is added or removed and no metadata is written."""
    data = _article(linkHealth=[{"field": "webUrl", "url": PAGE, "status": "dead"}])
    assert _decide(data, _evidence({PAGE: LinkStatus.OK}, _meta(), outage=True)).edits == ()
    assert _decide(_article(), _evidence({PAGE: LinkStatus.DEAD}, outage=True)).edits == ()


def test_users_own_linkhealth_value_is_left_alone() -> None:
    """A linkHealth key that is not our block (e.g. a string) is never overwritten."""
    data = _article(excerpt="e", linkHealth="checked by hand")
    assert _decide(data, _evidence({PAGE: LinkStatus.DEAD})).edits == ()


REFRESH = {"metadata": {"images": {"policy": "refresh"}}}


def test_refresh_policy_follows_a_new_share_image_and_keeps_other_keys() -> None:
    """`refresh` replaces an alive first image that is no longer the share image: url, width, height."""
    settings = parse_settings(REFRESH)
    data = _article(
        excerpt=DESCRIPTION, images=[{"url": OLD_IMG, "width": 10, "height": 10, "isCached": True}]
    )
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 1200, 630)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(image=NEW_IMG), probes)

    decision = _decide(data, evidence, settings)

    assert decision.edits == (
        SetValue(("images", 0, "url"), NEW_IMG),
        SetValue(("images", 0, "width"), 1200),
        SetValue(("images", 0, "height"), 630),
    )
    assert image_candidates(sketch(data, settings), evidence, settings) == {NEW_IMG}


def test_refresh_policy_keeps_the_image_when_the_share_image_is_dead_or_the_same() -> None:
    """`refresh` changes nothing when the new share image did not probe alive, or is the article's."""
    settings = parse_settings(REFRESH)
    data = _article(excerpt=DESCRIPTION, images=[{"url": OLD_IMG, "width": 800, "height": 600}])
    dead = {NEW_IMG: ImageProbe(NEW_IMG, False, reason="HTTP 404")}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(image=NEW_IMG), dead)
    assert _decide(data, evidence, settings).edits == ()
    same = {OLD_IMG: ImageProbe(OLD_IMG, True, "image/jpeg", 800, 600)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(image=OLD_IMG), same)
    assert _decide(data, evidence, settings).edits == ()


def test_replace_dead_policy_leaves_an_alive_outdated_image() -> None:
    """The default policy replaces only dead images: an alive old image stays."""
    data = _article(excerpt=DESCRIPTION, images=[{"url": OLD_IMG}])
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 1200, 630)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(image=NEW_IMG), probes)
    assert _decide(data, evidence).edits == ()


def test_excerpt_is_bounded_cleaned_and_cut_at_a_word() -> None:
    """A long description is cut at a word boundary to max_length; controls and U+FFFD are removed."""
    settings = parse_settings({"metadata": {"excerpt": {"max_length": 60}}})
    long = "Word\x00s\x1b with \ufffdcontrols " + "and many more words " * 50
    decision = _decide(_article(), _evidence({PAGE: LinkStatus.OK}, _meta(long, image=None)), settings)

    assert decision.edits[0].value == "Words with controls and many more words and many more…"


def test_default_excerpt_limit_is_1000_characters() -> None:
    """Two 700 KB descriptions never make a huge excerpt: 1,000 characters at most by default."""
    decision = _decide(
        _article(), _evidence({PAGE: LinkStatus.OK}, _meta("x " * 350_000 + "end", image=None))
    )
    written = decision.edits[0].value
    assert len(written) <= 1000 and written.endswith("x…")


def test_text_without_spaces_is_not_cut_inside_a_combined_character() -> None:
    """Cutting CJK or accented text without spaces never separates a base from its combining mark."""
    from pipeline.text import bounded_text

    text = "e\u0301" * 40
    cut = bounded_text(text, 20)
    assert len(cut) <= 20 and cut.endswith("e\u0301…")


def test_image_sizes_above_the_bound_are_not_written() -> None:
    """A probed side above 20,000 px (a hostile or broken header) is never written."""
    data = _article(excerpt=DESCRIPTION, images=[{"url": OLD_IMG, "width": 10, "height": 10}])
    probes = {OLD_IMG: ImageProbe(OLD_IMG, True, "image/png", 65_000, 400)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, _meta(image=None), probes)
    assert _decide(data, evidence).edits == ()


def test_body_fallbacks_are_used_only_when_enabled() -> None:
    """A description or image read from the body is written only with `from_body` (on by default)."""
    meta = _meta(image=NEW_IMG, sources={"description": "body", "image": "body"})
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 800, 600)}
    evidence = _evidence({PAGE: LinkStatus.OK}, meta, probes)
    assert {e.path for e in _decide(_article(), evidence).edits} == {("excerpt",), ("images",)}
    off = parse_settings({"metadata": {"excerpt": {"from_body": False}, "images": {"from_body": False}}})
    assert _decide(_article(), evidence, off).edits == ()


def test_a_body_image_must_probe_at_least_200_px_wide() -> None:
    """An image found in the body fills the list only when its real width is at least 200 px."""
    meta = _meta(image=NEW_IMG, sources={"image": "body"})
    narrow = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/png", 120, 120)}
    evidence = _evidence({PAGE: LinkStatus.OK}, meta, narrow)
    assert _decide(_article(excerpt=DESCRIPTION), evidence).edits == ()


def test_body_fallbacks_only_fill_gaps() -> None:
    """With overwrite and refresh, a body paragraph or image never replaces an existing excerpt or image."""
    settings = parse_settings(
        {"metadata": {"excerpt": {"policy": "overwrite"}, "images": {"policy": "refresh"}}}
    )
    data = _article(excerpt="Written by an editor", images=[{"url": OLD_IMG, "width": 300, "height": 200}])
    meta = _meta(image=NEW_IMG, sources={"description": "body", "image": "body"})
    probes = {NEW_IMG: ImageProbe(NEW_IMG, True, "image/jpeg", 800, 600)}
    evidence = _evidence({PAGE: LinkStatus.OK, OLD_IMG: LinkStatus.OK}, meta, probes)

    assert _decide(data, evidence, settings).edits == ()


def test_an_excerpt_holding_the_whole_long_description_is_kept() -> None:
    """With overwrite, an excerpt equal to a description longer than max_length is current: not cut."""
    settings = parse_settings({"metadata": {"excerpt": {"policy": "overwrite", "max_length": 60}}})
    long = "A long description that goes well past the sixty characters of the configured limit."
    evidence = _evidence({PAGE: LinkStatus.OK}, _meta(long, image=None))

    assert _decide(_article(excerpt=long), evidence, settings).edits == ()
    assert _decide(_article(excerpt="Stale"), evidence, settings).edits[0].value.endswith("…")
