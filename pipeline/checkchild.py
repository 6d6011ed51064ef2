"""The check process's own side (started by :class:`~pipeline.checkprocess.CheckProcess`): a ``CheckStream``
fed from the command pipe, its observations sent back as they come.

Reads the settings the parent sends. Writes nothing but the result pipe. The messages and their framing
are ``checkprocess``'s (``_send``, ``_receive``); this module holds only what runs in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.checkprocess import _SWITCH_INTERVAL, _receive, _send, _wire

_GATHER = 0.01  # seconds the check's observations gather before they go to the parent together

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
    waiting: queue.SimpleQueue[list[Observation] | None] = queue.SimpleQueue()
    lock = threading.Lock()
    sent: set[str] = set()  # the URLs observed: the parent keeps the observations, this process only these
    gathered: list[Observation] = []  # observed on the check's loop since the last hand-over to the sender

    def observed(obs: Observation) -> None:
        # Handed to the sender every _GATHER seconds, not one by one: each hand-over woke the sender (a
        # thread switch, a pickle, a write, and the parent's relay woken in turn) for one observation.
        if not gathered:
            asyncio.get_running_loop().call_later(_GATHER, hand_over)
        gathered.append(obs)

    def hand_over() -> None:
        waiting.put(gathered.copy())
        gathered.clear()

    def sender() -> None:
        # Off the event loop: the observations go back in batches of whatever came meanwhile.
        while True:
            batches = [waiting.get()]
            while not waiting.empty():
                batches.append(waiting.get())
            kept = [obs for batch in batches if batch is not None for obs in batch]
            sent.update(obs.url for obs in kept)
            if kept:
                with lock:
                    _send(results, ("observations", _wire(kept)))
            if batches[-1] is None:
                return

    host_stats: dict[str, HostStats] = {}
    stream = CheckStream(
        settings, on_result=observed, keep_pages=keep_pages, host_stats=host_stats, keep_observations=False
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
        # The check's loop has ended: what it observed since its last hand-over is this thread's to send.
        hand_over()
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
