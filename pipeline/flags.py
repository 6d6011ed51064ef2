"""Link-health flags: the ``linkHealth`` block of an article, one entry per dead field.

Reads: the article's data and refs, the run's ``Evidence``, ``health.flag_field``, ``health.archive.write``.
Returns: the edit of the block (or none) and the changes to report. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.config import Settings
from pipeline.models import (
    ALIVE,
    Change,
    Edit,
    Evidence,
    LinkRef,
    LinkResult,
    LinkStatus,
    Remove,
    SetValue,
)

LINK_HEALTH_SOURCE = "link-health"


def _flag_entry(ref: LinkRef, result: LinkResult) -> dict[str, Any]:
    since = result.first_failed_at.date().isoformat() if result.first_failed_at else None
    entry: dict[str, Any] = {"field": ref.field_path, "url": ref.url, "status": str(LinkStatus.DEAD)}
    if since:
        entry["since"] = since
    return entry


def _decide_flags(
    article: str,
    data: Mapping[str, Any],
    refs: Sequence[LinkRef],
    evidence: Evidence,
    settings: Settings,
    edits: list[Edit],
    changes: list[Change],
) -> None:
    key = settings.health.flag_field
    existing = data.get(key)
    if existing is not None and not (
        isinstance(existing, list) and all(isinstance(e, Mapping) and "field" in e for e in existing)
    ):
        return  # not a block we wrote: leave the user's data alone
    old_entries: dict[str, Mapping[str, Any]] = {str(e["field"]): e for e in existing or []}

    desired: list[Any] = []
    for ref in refs:
        result = evidence.results.get(ref.normalized) if ref.normalized else None
        old = old_entries.get(ref.field_path)
        if old is not None and old.get("url") != ref.url:
            old = None  # the field now holds another URL: the old flag no longer applies
        if result is not None and result.status is LinkStatus.DEAD:
            entry = old if old is not None else _flag_entry(ref, result)
            copy = evidence.archive.get(ref.normalized or "") if settings.health.archive.write else None
            if copy and entry.get("archiveUrl") != copy:
                entry = {**entry, "archiveUrl": copy}  # health.archive.write: the copy beside the flag
            desired.append(entry)
        elif old is not None and (result is None or result.status not in ALIVE):
            desired.append(old)  # no evidence of recovery: keep the flag as it is

    if desired == list(existing or []):
        return
    edits.append(SetValue((key,), desired) if desired else Remove((key,)))
    old_by_field = {str(e["field"]): e for e in existing or []}
    new_by_field = {str(e["field"]): e for e in desired}
    for name in sorted(old_by_field.keys() | new_by_field.keys()):
        before, after = old_by_field.get(name), new_by_field.get(name)
        if before != after:
            changes.append(Change(article, f"{key}[{name}]", before, after, LINK_HEALTH_SOURCE))
