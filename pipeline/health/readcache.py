"""The read pass's memory across runs: settled articles and unchanged article files.

Reads and writes the tables ``decided`` (an article that needed no change, with its file's size, mtime and
the digest of the evidence it was decided on), ``url_evidence`` and ``evidence_generation`` (each URL's
evidence digest and the generation in which it last changed, so an article none of whose URLs changed
since it was decided is known unchanged without its digest) and ``files`` (an article file's size, mtime
and inode when it was read, and its references and sketch), so a warm night neither parses nor decides
what did not change.
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

    def next_generation(self) -> int:
        """A new evidence generation, greater than every one handed out before (one per write pass)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO evidence_generation (id, generation) VALUES (1, 1)"
                " ON CONFLICT (id) DO UPDATE SET generation = evidence_generation.generation + 1"
            )
            rows = self._db.execute("SELECT generation FROM evidence_generation WHERE id = 1").fetchall()
        return int(rows[0][0])

    def evidence_writes(self) -> int | None:
        """How many rows the tables the evidence is read from have had written (None: not counted)."""
        if self._postgres:
            return None
        rows = self._db.execute("SELECT count FROM evidence_writes WHERE id = 1").fetchall()
        return int(rows[0][0]) if rows else None

    def evidence_basis(self) -> str | None:
        """What the last write pass's URL digests were made from, when it was a quiet night (else None)."""
        try:
            rows = self._db.execute("SELECT basis FROM evidence_generation WHERE id = 1").fetchall()
        except sqlite3.OperationalError:  # a read-only (dry-run) open of a history from before it
            return None
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def set_evidence_basis(self, basis: str | None) -> None:
        """Record what this write pass's URL digests were made from (None: not reusable)."""
        with self._transaction():
            self._db.execute("UPDATE evidence_generation SET basis = ? WHERE id = 1", (basis,))

    def url_evidence(self) -> dict[str, tuple[str, int]]:
        """Every URL's stored evidence digest and the generation in which it last changed."""
        rows = self._db.execute("SELECT url, digest, changed FROM url_evidence")
        return {row[0]: (row[1], row[2]) for row in rows}

    def record_url_evidence(self, rows: Iterable[tuple[str, str, int]], forget: Iterable[str] = ()) -> None:
        """Store URLs' new evidence digests (url, digest, generation in which it changed); drop ``forget``."""
        batch, gone = list(rows), [(url,) for url in forget]
        if not batch and not gone:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO url_evidence (url, digest, changed) VALUES (?, ?, ?)"
                + upsert("url", ("digest", "changed")),
                batch,
            )
            self._db.executemany("DELETE FROM url_evidence WHERE url = ?", gone)

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
