"""The read pass's memory across runs: settled articles and unchanged article files.

Reads and writes the tables ``decided`` (an article that needed no change, with its file's size, mtime and
the digest of the evidence it was decided on) and ``files`` (an article file's size, mtime and inode when it
was read, and its references and sketch), so a warm night neither parses nor decides what did not change.
Part of the history database (``HistoryStore`` inherits it); no other module sees these tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from pipeline.health.database import Database, upsert


class ReadCache(Database):
    """The ``decided`` and ``files`` tables of the history database."""

    def load_decided(self, paths: Iterable[bytes] | None = None) -> dict[bytes, tuple[int, int, str]]:
        """Articles that needed no change when last decided: path -> (size, mtime_ns, evidence digest).

        Only those of ``paths`` when given (the write pass asks a batch at a time, not for every file).
        """
        query = "SELECT path, size, mtime_ns, evidence FROM decided"
        rows = (
            self._db.execute(query)
            if paths is None
            else self._rows_in(query + " WHERE path IN ({marks})", paths)
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def record_decided(self, rows: Iterable[tuple[bytes, int, int, str]]) -> None:
        """Remember articles that needed no change, with the file's size and mtime and the evidence digest."""
        batch = list(rows)
        if not batch:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO decided VALUES (?, ?, ?, ?)" + upsert("path", ("size", "mtime_ns", "evidence")),
                batch,
            )

    # ---- files (the read pass's results of unchanged article files) ------------------------------------
    def load_files(self, settings: str) -> dict[bytes, tuple[int, int, int]]:
        """Article files read with these settings: path -> (size, mtime_ns, inode) when they were read.

        Empty for a history opened read-only (a dry run) from before the table existed.
        """
        try:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, inode FROM files WHERE settings = ?", (settings,)
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def file_entries(self, paths: Iterable[bytes]) -> dict[bytes, str]:
        """The stored read-pass entries of those paths."""
        rows = self._rows_in("SELECT path, entry FROM files WHERE path IN ({marks})", paths)
        return {row[0]: row[1] for row in rows}

    def record_files(
        self, rows: Iterable[tuple[bytes, int, int, int, str, str]], forget: Iterable[bytes] = ()
    ) -> None:
        """Store read-pass entries (path, size, mtime_ns, inode, settings digest, entry); drop ``forget``."""
        batch, gone = list(rows), [(path,) for path in forget]
        if not batch and not gone:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)"
                + upsert("path", ("size", "mtime_ns", "inode", "settings", "entry")),
                batch,
            )
            self._db.executemany("DELETE FROM files WHERE path = ?", gone)
