"""Spool: records in a temporary file (a few held as they are), read back in order and by index."""

from __future__ import annotations

import os
import pickle

import pytest

from pipeline import spool as spool_module
from pipeline.runreport import LinkPlace, LinkRow
from pipeline.spool import Spool


def _rows(count: int) -> list[LinkRow]:
    return [
        LinkRow(f"https://example.com/{n}", "ok", 200, articles=(LinkPlace(f"a{n}.md", ("webUrl",), (n,)),))
        for n in range(count)
    ]


def test_spool_gives_back_what_was_appended_in_order() -> None:
    """Iteration, indexing (negative too) and slices return the appended records, equal to the list."""
    rows = _rows(2500)
    spool = Spool(rows)
    assert len(spool) == 2500
    assert list(spool) == rows
    assert spool == rows and spool == tuple(rows) and rows == spool
    assert spool[0] == rows[0] and spool[-1] == rows[-1] and spool[1234] == rows[1234]
    assert spool[10:13] == rows[10:13]
    assert spool != rows[:-1] and spool != [*rows[:-1], rows[0]]


def test_spool_keeps_records_in_a_file_not_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the records it holds, the records' bytes are in the spool's temporary file (those held first);
    appending after a read goes to its end."""
    monkeypatch.setattr(spool_module, "_IN_MEMORY", 40)
    spool = Spool(_rows(100))
    assert spool._file is not None and spool._held is None
    size = os.fstat(spool._file.fileno()).st_size
    assert size > 100 * 50
    assert spool[5] == _rows(6)[5]
    spool.append(_rows(1)[0])
    assert len(spool) == 101 and spool[-1] == _rows(1)[0] and spool[99] == _rows(100)[99]
    assert list(spool) == [*_rows(100), _rows(1)[0]]


def test_a_small_spool_holds_its_records_and_has_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ``_IN_MEMORY`` records nothing is pickled; an iteration begun before the spool fills its
    file still sees the records there when it began."""
    monkeypatch.setattr(spool_module, "_IN_MEMORY", 40)
    rows = _rows(39)
    spool = Spool(rows)
    assert spool._file is None and list(spool) == rows and spool[-1] is rows[-1]
    reading = iter(spool)
    assert next(reading) == rows[0]
    spool.extend(_rows(2))  # the 40th record: every record goes to the file
    assert spool._file is not None and os.fstat(spool._file.fileno()).st_size > 41 * 50
    assert [rows[0], *reading] == rows
    assert list(spool) == [*rows, *_rows(2)]


def test_two_iterations_at_once_each_see_every_record() -> None:
    """Iterators read with their own positions: a nested loop over one spool works."""
    spool = Spool(range(300))
    pairs = [(a, b) for a in spool if a % 100 == 0 for b in spool if b % 150 == 0]
    assert pairs == [(a, b) for a in (0, 100, 200) for b in (0, 150)]


def test_spool_pickles_as_a_tuple_of_its_records() -> None:
    """A report crossing a process boundary carries its rows, not a file handle."""
    assert pickle.loads(pickle.dumps(Spool([1, "two", (3,)]))) == (1, "two", (3,))
