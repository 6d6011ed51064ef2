"""``Spool``: an append-only sequence of records kept in an anonymous temporary file, not in memory.

A night over a large corpus makes one report row per unique URL and one change row per changed field;
held as objects they cost kilobytes per article. A spool pickles each record to a temporary file as it is
added and keeps only its offset (8 bytes a record), so the report is built, stored and rendered a row at a
time (``report/build.py`` makes the spools; every format iterates them). A small spool (records weighing
less than ``_IN_MEMORY`` together) holds its records as they are and has no file: what it would save is
less than pickling each record and reading it back costs.

Reads and writes: one unnamed temporary file (``tempfile.TemporaryFile``: removed from the folder at once,
so a killed run leaves nothing behind). Settings: none. A spool equals any list, tuple or spool holding
equal records in the same order; pickled, it travels as a tuple.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Generic, TypeVar, overload

T = TypeVar("T")

_CHUNK = 1 << 20  # bytes read at a time when iterating
# Records held as they are before the first goes to the file: a report of a few thousand links (a CI run,
# a small corpus) is then built, stored and rendered without pickling each row and reading it back twice
# (about 0.1 s of the tail after the last answer on `pipeline bench --check-only`'s 5,000 links). A report
# row is about 600 bytes, but the peak RSS of a run at 10,000 articles measured 8-11 MB higher (README).
# The bound is a weight, not a count: the report weighs a link row by its places, so rows of a URL cited
# by every article (a tag page, an author) go to the file at once instead of being held 8,191 at a time.
_IN_MEMORY = 8192


def _one(_item: object) -> int:
    return 1


class Spool(Sequence[T], Generic[T]):
    """Records appended one at a time to a temporary file; read back in order, or one by index."""

    def __init__(self, items: Iterable[T] = (), weigh: Callable[[T], int] = _one) -> None:
        """``weigh``: a record's share of the ``_IN_MEMORY`` held before the file is used (1 each)."""
        self._held: list[T] | None = []  # the first records, until they weigh _IN_MEMORY: then the file's
        self._weigh = weigh
        self._weight = 0
        self._file: IO[bytes] | None = None
        self._closer: Callable[[], object] | None = None
        self._offsets = array("q")
        self._end = 0
        self.extend(items)

    def append(self, item: T) -> None:
        if self._held is not None:
            self._held.append(item)
            self._weight += self._weigh(item)
            if self._weight >= _IN_MEMORY:
                self._spill()
            return
        self._write(item)

    def _spill(self) -> None:
        """From now on the records are in the file, those held so far first."""
        self._file = tempfile.TemporaryFile(prefix="pipeline-spool-")  # noqa: SIM115 (lives with the spool)
        # Closed when the spool is collected: a report's rows live as long as the report does.
        self._closer = weakref.finalize(self, self._file.close)
        held, self._held = self._held or [], None
        for item in held:
            self._write(item)

    def _write(self, item: T) -> None:
        assert self._file is not None
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        self._file.write(data)  # reads use pread, so the file's position stays at the end
        self._offsets.append(self._end)
        self._end += len(data)

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return len(self._held) if self._held is not None else len(self._offsets)

    def _bounds(self, index: int) -> tuple[int, int]:
        stop = self._offsets[index + 1] if index + 1 < len(self._offsets) else self._end
        return self._offsets[index], stop

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("spool index out of range")
        if self._held is not None:
            return self._held[index]
        assert self._file is not None
        self._file.flush()
        start, stop = self._bounds(index)
        item: T = pickle.loads(os.pread(self._file.fileno(), stop - start, start))
        return item

    def __iter__(self) -> Iterator[T]:
        # Each iterator reads with its own position (pread), so two may run at once; it sees the records
        # that were there when it started.
        if self._held is not None:
            held, count = self._held, len(self._held)  # a spill meanwhile leaves this list as it is
            for index in range(count):
                yield held[index]
            return
        assert self._file is not None
        self._file.flush()
        count, fd = len(self._offsets), self._file.fileno()
        buffer, buffer_start = b"", 0
        for index in range(count):
            start, stop = self._bounds(index)
            if stop > buffer_start + len(buffer):
                buffer, buffer_start = os.pread(fd, max(_CHUNK, stop - start), start), start
            yield pickle.loads(buffer[start - buffer_start : stop - buffer_start])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spool | list | tuple):
            return NotImplemented
        return len(other) == len(self) and all(
            mine == theirs for mine, theirs in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Spool({len(self)} records)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))

    def close(self) -> None:
        """Remove the file now (it also goes when the spool is collected or the process ends)."""
        if self._closer is not None:
            self._closer()
