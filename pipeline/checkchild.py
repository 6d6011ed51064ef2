"""The check process's own side (started by :class:`~pipeline.checkprocess.CheckProcess`): a ``CheckStream``
fed from the command pipe, its observations sent back as they come.

Reads the settings the parent sends. Writes nothing but the result pipe. The messages and their framing
are ``checkprocess``'s (``_send``, ``_receive``); this module holds only what runs in the child.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.checkprocess import _SWITCH_INTERVAL, _receive, _send

if TYPE_CHECKING:
    from pipeline.models import Observation
    from pipeline.runreport import HostStats


def _child(commands: BinaryIO, results: BinaryIO) -> None:
    """The child's body: a ``CheckStream`` fed from the command pipe, its observations sent back."""
    import queue

    from pipeline.check.stream import CheckStream

    first = _receive(commands)
    if first is None:
        return
    # The event loop shares the interpreter lock with this thread (parsing each batch handed over) and the
    # sender (pickling observations): with Python's 5 ms default, an answer could wait that long for it.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    _, settings, keep_pages = first
    waiting: queue.SimpleQueue[Observation | None] = queue.SimpleQueue()
    lock = threading.Lock()
    sent: set[str] = set()  # the URLs observed: the parent keeps the observations, this process only these

    def sender() -> None:
        # Off the event loop: the observations go back in batches of whatever came meanwhile.
        while True:
            batch = [waiting.get()]
            while not waiting.empty():
                batch.append(waiting.get())
            kept = [obs for obs in batch if obs is not None]
            sent.update(obs.url for obs in kept)
            if kept:
                with lock:
                    _send(results, ("observations", kept))
            if batch[-1] is None:
                return

    host_stats: dict[str, HostStats] = {}
    stream = CheckStream(
        settings, on_result=waiting.put, keep_pages=keep_pages, host_stats=host_stats, keep_observations=False
    )
    sending = threading.Thread(target=sender, name="send-results", daemon=True)
    sending.start()
    stream.start()
    with lock:
        _send(results, ("ready",))

    def finish() -> None:
        message: tuple[Any, ...]
        try:
            stream.finish()
        except BaseException as exc:
            message = ("error", _picklable(exc), traceback.format_exc())
        else:
            message = ("done", sent, host_stats)  # their URLs (see CheckProcess._observed), once all are sent
        waiting.put(None)
        sending.join()  # every observation before the outcome
        with lock:
            _send(results, message)
        os._exit(0)

    while True:
        command = _receive(commands)
        if command is None:  # the parent cancelled, or is gone: no request more
            stream.cancel()
            return
        if command[0] == "put":
            stream.put(command[1], command[2], command[3])
        else:  # "finish": the checks end on a thread of their own, this one still watches the pipe
            threading.Thread(target=finish, name="finish", daemon=True).start()


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def main(commands_fd: int, results_fd: int) -> None:
    """The child process (see ``_CHILD``)."""
    commands, results = open(commands_fd, "rb"), open(results_fd, "wb")  # noqa: SIM115 (see os._exit)
    with contextlib.suppress(BrokenPipeError):  # the parent is gone
        _child(commands, results)
    os._exit(0)  # no interpreter teardown (every message was flushed as it was sent): not worth its time
