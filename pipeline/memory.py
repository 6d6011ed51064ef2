"""Memory a run's stage has freed, handed back to the system before the next stage (glibc's ``malloc_trim``).

Reads and writes: nothing. Settings: none. Returns: nothing; on a C library without ``malloc_trim`` (musl,
macOS) it does nothing.

Why: Python returns freed objects to the C allocator, which keeps the pages for reuse. Much of what a stage
frees cannot be reused by the next one: the check's buffers were allocated by its own thread, in an arena
the main thread does not allocate from, and the read pass's parse leaves free holes between the records it
keeps. Measured on ``bench/refresh_bench.py`` (10,000 articles, cold night), trimming between the stages
lowers the run's peak resident memory by about 6 MB; it costs a few milliseconds a call.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    # The process's own symbols (the C library's among them): no search for the library, no subprocess.
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release() -> None:
    """Hand the pages the C allocator holds free back to the system, where the C library can."""
    trim = _trim()
    if trim is not None:
        trim(0)


def keep_from_collections() -> None:
    """What is alive now outlives the rest of the run: kept out of the cyclic collector's passes until
    ``thaw`` (``gc.freeze``), as the check's own process does while it checks (``check.batch``).

    Why: after the read pass and the plan (the imports, the corpus's tables, the history loaded) a full
    collection rescans every one of those objects, and one fell into the 0.25 s after the last answer on
    `pipeline bench --check-only` almost every run: 21-33 ms of it. Garbage is still freed as it goes
    (reference counts); only cycles among these objects wait for ``thaw``, and a run makes almost none.
    """
    gc.freeze()


def thaw() -> None:
    """The objects ``keep_from_collections`` set aside are the collector's again (the run is over)."""
    gc.unfreeze()
