"""Spool: records kept in a temporary file, read back in order, by index, and equal to the held list."""

from __future__ import annotations

import os
import pickle

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


def test_spool_keeps_records_in_a_file_not_in_memory() -> None:
    """The records' bytes are in the spool's temporary file; appending after a read goes to its end."""
    spool = Spool(_rows(100))
    size = os.fstat(spool._file.fileno()).st_size
    assert size > 100 * 50
    assert spool[5] == _rows(6)[5]
    spool.append(_rows(1)[0])
    assert len(spool) == 101 and spool[-1] == _rows(1)[0] and spool[99] == _rows(100)[99]


def test_two_iterations_at_once_each_see_every_record() -> None:
    """Iterators read with their own positions: a nested loop over one spool works."""
    spool = Spool(range(300))
    pairs = [(a, b) for a in spool if a % 100 == 0 for b in spool if b % 150 == 0]
    assert pairs == [(a, b) for a in (0, 100, 200) for b in (0, 150)]


def test_spool_pickles_as_a_tuple_of_its_records() -> None:
    """A report crossing a process boundary carries its rows, not a file handle."""
    assert pickle.loads(pickle.dumps(Spool([1, "two", (3,)]))) == (1, "two", (3,))
