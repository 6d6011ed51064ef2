"""SIGTERM and SIGINT at any moment of a command's life end it with exit code 5 (``ExitCode.INTERRUPTED``).

Reads nothing; used by ``__main__`` (the first code the process runs) and by ``cli`` (the run's handler).

- From the package's first line (``install_early``), a signal is only noted: the default action (death
  by signal, -15) never applies again, and raising from a handler at an arbitrary point of start-up is
  unsafe (pydantic's compiled validators, for one, swallow it). Once its settings are loaded, a command
  asks ``stopped()`` and ends with code 5 before doing anything; a run then installs its own handler,
  which asks the run to stop and calls ``note``; read-only commands call ``exit_on_stop``.
- At exit, ``finish`` blocks both signals, runs the ``atexit`` handlers, flushes, and leaves with
  ``os._exit``: the interpreter's finalisation restores the default handlers, so a signal arriving then
  used to kill the process with -15. A signal noted (or pending) by then makes the exit code 5.
"""

from __future__ import annotations

import atexit
import contextlib  # already loaded by site: free
import os
import signal
import sys

# Until the handlers are installed a signal kills the process (-15), so nothing slow is imported first:
# typing alone took ~2 ms. mypy takes TYPE_CHECKING as true wherever it is defined.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import NoReturn

INTERRUPTED = 5  # ExitCode.INTERRUPTED, without importing the models this early
_STOPS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def note(signum: int) -> None:
    """Remember that a stop signal arrived, so that the process exits with code 5 whatever else happens."""
    _received.append(signum)


def stopped() -> bool:
    """Whether a stop signal has arrived."""
    return bool(_received)


def _early(signum: int, _frame: FrameType | None) -> None:
    note(signum)


def _raise(signum: int, _frame: FrameType | None) -> None:
    note(signum)
    raise SystemExit(INTERRUPTED)


def install_early() -> None:
    """Note stop signals (exit code 5 at the end) until a command installs its own handler."""
    for sig in _STOPS:
        signal.signal(sig, _early)


def exit_on_stop() -> None:
    """For commands that write nothing: a stop signal ends them at once with code 5 (also one noted)."""
    for sig in _STOPS:
        signal.signal(sig, _raise)
    if _received:
        raise SystemExit(INTERRUPTED)


def finish(code: object) -> NoReturn:
    """Leave the process with ``code`` (a ``SystemExit.code``), or 5 if a stop signal ever arrived."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    status = code if isinstance(code, int) else 0 if code is None else 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
    try:
        atexit._run_exitfuncs()  # logging.shutdown and the like, as a normal exit would
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe must not change the code
                stream.flush()
        if _received or set(_STOPS) & signal.sigpending():
            status = INTERRUPTED
        os._exit(status)
