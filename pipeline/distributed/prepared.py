"""A run's first dispatch made ready while the corpus is read: :class:`Prepared`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import EngineUnavailable, Interrupted

if TYPE_CHECKING:
    from pipeline.distributed.coordinator import _Dispatch

log = logging.getLogger("pipeline")

_CLOSE_WAIT_S = 5.0  # how long a run that ends waits for a dispatch still being made
_POLL_S = 0.1  # how often a take() waiting for the dispatch looks at the run's stop request


def _ready(settings: Settings, stop: threading.Event | None) -> tuple[_Dispatch, int]:
    """``coordinator._ready``, imported here, on the thread that calls it: Celery, Kombu and the broker's
    client are then loaded beside the corpus's read, not before it on the run's own thread (0.4-0.8 s of
    the coordinator's start-up in the worker benchmark's profile)."""
    from pipeline.distributed import coordinator

    return coordinator._ready(settings, stop)


class Prepared:
    """A run's first dispatch made ready on a thread of its own while the corpus is read.

    Why: importing Celery, connecting to the broker and the database, opening the dispatch and counting
    the workers' processes (a 0.5 s window for their answers) took about 1.1 s before the first shard could
    leave. :meth:`take` waits for it and raises what it raised (an unreachable broker is still exit 9, when
    the check would have found it); :meth:`close` stops it (it waits on an event of its own until taken)
    and closes a dispatch nobody took (nothing was due, the read failed)."""

    def __init__(
        self, settings: Settings, stop: threading.Event | None, meanwhile: Callable[[], None] | None = None
    ) -> None:
        self._settings = settings
        self._stop = stop
        self._meanwhile = meanwhile
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._result: tuple[_Dispatch, int] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._taken = False
        self._thread = threading.Thread(
            target=self._prepare, args=(settings,), name="dispatch-setup", daemon=True
        )
        self._thread.start()

    def _prepare(self, settings: Settings) -> None:
        try:
            result = _ready(settings, self._cancel)
        except BaseException as exc:  # raised again by take(), on the run's own thread
            self._error = exc
            return
        with self._lock:
            if self._closed:  # the run is over and did not wait for it
                result[0].close()
            else:
                self._result = result

    def take(self) -> tuple[_Dispatch, int]:
        """The ready dispatch, now watching the run's stop request, and the workers' processes (once: the
        caller closes the dispatch)."""
        if self._taken:
            raise RuntimeError("the prepared dispatch was taken already")
        self._taken = True
        failed_during_read = not self._thread.is_alive() and self._error is not None
        while self._thread.is_alive():
            self._thread.join(_POLL_S)
            if self._stop is not None and self._stop.is_set():
                self._cancel.set()
        with self._lock:
            result, self._result = self._result, None
        if result is not None:
            result[0].watch(self._stop)
            return result
        assert self._error is not None
        if failed_during_read and not isinstance(self._error, Interrupted):
            # The wait for the broker, the database and the workers ran out while the corpus was still being
            # read: they may be answering by now, and the check is owed a whole wait of its own.
            log.info("%s (while the corpus was read); trying again", self._error)
            return _ready(self._settings, self._stop)
        raise self._error

    def sent(self) -> None:
        """The first shards are on their way: the run's ``meanwhile`` work (the report templates) starts on
        a thread now, while the workers check and the run only waits (once). Before the send it would hold
        the interpreter lock the shards are made and sent with."""
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            threading.Thread(target=meanwhile, name="meanwhile", daemon=True).start()

    def close(self) -> None:
        """Stop making the dispatch and close it if nobody took it; a step that cannot be cut short (a
        broker connection timing out) is waited for so long, then the thread closes what it makes."""
        self._cancel.set()
        self._thread.join(_CLOSE_WAIT_S)
        with self._lock:
            self._closed = True
            result, self._result = self._result, None
        if result is not None:
            result[0].close()
        error = self._error
        if not self._taken and error is not None and not isinstance(error, EngineUnavailable | Interrupted):
            # Nothing was due, so the run did not need the dispatch; a failure other than an engine away is
            # still worth a line (a bug would otherwise pass unseen).
            log.warning("making the dispatch failed (nothing needed it): %r", error)


__all__ = ["Prepared"]
