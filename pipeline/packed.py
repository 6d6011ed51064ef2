"""``PackedMap``: a map by URL whose values a subclass keeps packed, decoded when read.

The run's large per-URL maps (page metadata, image probes, verdicts) keep each value in a compact row of
their own making; what is not about the packing (membership, deleting, iterating, the count) is the
dict's, defined once here. Reads and writes: nothing but memory. Settings: none.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

_Value = TypeVar("_Value")
_Row = TypeVar("_Row")


class PackedMap(MutableMapping[str, _Value], Generic[_Value, _Row]):
    """A map by URL whose values a subclass keeps packed in ``_rows`` (set, get); the rest is the dict's."""

    _rows: dict[str, _Row]

    def __delitem__(self, url: str) -> None:
        del self._rows[url]

    def __contains__(self, url: object) -> bool:
        return url in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)
