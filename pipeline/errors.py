"""The exception tree: an exception means a file or a stage cannot go on; a dead link is data, never one.

::

    Exception
    ├── ConfigError            the configuration is invalid (exit 3); the message names the dotted key
    ├── LockHeld               another run holds the run lock (exit 4)
    ├── Interrupted            a stop was requested; raised between stages, caught by the runner (exit 5)
    ├── FrontMatterError       one article cannot be read or written; the runner files it and goes on
    │   ├── WriteConflict      the file changed under us; the user's bytes are kept
    │   ├── ThroughMerge       an edit would cross a YAML merge key (<<)
    │   └── OutsideRoots       a path leads out of the corpus roots
    ├── ArchiveUnavailable     the archive API cannot answer now; the copies are looked up next run
    ├── EngineUnavailable      executor: celery: the broker or the workers did not answer in time (exit 9)
    ├── ValueError
    │   ├── IgnoreFileError    an ignore file cannot be read or has a bad pattern (exit 3)
    │   └── ReportInvalid      a report does not match report/schema.json; names the offending paths
    └── OSError
        ├── PathUnusable       a state, history or reports path cannot be used (exit 6)
        └── AddressRefused     the address guard refused a host (loopback, private...): the link is skipped
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class ConfigError(Exception):
    """The configuration cannot be used; the message names the setting."""


class PathUnusable(OSError):
    """A state, history or reports path cannot be used; the message names it and says what to do."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}; {remedy}")


class FrontMatterError(Exception):
    """An article's front-matter cannot be read or edited; the message is for people."""


class WriteConflict(FrontMatterError):
    """The file's bytes on disk differ from those read at the start of the run."""


class ThroughMerge(FrontMatterError):
    """The edit's value comes through a YAML merge key (``<<: *base``): changing it would change the base."""


class OutsideRoots(FrontMatterError):
    """The path resolves (symlinks included) outside every configured root."""


class LockHeld(Exception):
    """Another process holds the run lock; the message names the file (or the shared history) and, if
    known, the holder (its pid, or for a shared history its host and pid)."""

    def __init__(self, path: Path | str, pid: int | None, holder: str | None = None) -> None:
        self.path = path
        self.pid = pid
        holder = holder or (f"process {pid}" if pid is not None else "another process")
        super().__init__(f"{path}: {holder} holds the run lock; another run is in progress, nothing was done")


class IgnoreFileError(ValueError):
    """An ignore file cannot be read or holds a line that is not a regular expression."""


class ReportInvalid(ValueError):
    """The report dict does not match report/schema.json; the message names the offending paths."""


class Interrupted(Exception):
    """A stop was requested; raised between stages and caught by ``refresh``."""


class CheckProcessLost(Interrupted):
    """The check's own process died before the checks ended (killed, out of memory): the run ends as an
    interrupted one (exit 5), no article written; the message says how it ended."""


class ArchiveUnavailable(Exception):
    """The archive cannot be asked now (down, blocking, or answering nonsense): stop for this run."""


class EngineUnavailable(Exception):
    """The broker cannot be reached, or no worker answered, in time; the message says which (password
    masked). No article was written."""


class AddressRefused(OSError):
    """A host resolved only to addresses the guard refuses (loopback, private, link-local, …)."""
