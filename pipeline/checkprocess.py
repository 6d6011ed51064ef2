"""The fed check (:class:`~pipeline.check.stream.CheckStream`) in a process of its own: :class:`CheckProcess`.

Reads the settings ``CheckStream`` reads. Returns the same observations and per-host figures.

Beside the read pass, the check's event loop and the reading thread took turns at one interpreter lock: each
answer waited for the read pass to let go of it, and the read pass for each answer. In a child interpreter the
check has a core of its own. The child is a fresh interpreter (``python -c``, not a fork: the parent may run
threads already), started before it is needed (``prestart``, first thing in ``python -m pipeline refresh``),
so that its imports (aiohttp, httpx) run on the other core while the parent still starts up.
This module imports none of them: the parent does not need the HTTP stack to hand the check over.

Two pipes, each message a length and a pickle. To the child: the settings as plain data (``plain``: no
pydantic in the child), batches of URLs (``put``), then ``finish``; the end of that pipe (the parent
cancelled, or died) cancels the check and the child exits at once. From the child: the observations as
they come, gathered for a hundredth of a second and sent as tuples (``_wire``; the caller's ``on_result``
sees each on this module's reading thread), then their URLs and the per-host figures, or the error the
check ended with. The child ignores SIGINT and SIGTERM (a Ctrl-C reaches
the whole process group): a stop request is the parent's to act on, and it cancels the child. A child that
dies (killed, out of memory) ends the check with ``CheckProcessLost``; one that cannot start leaves the check
to a thread of the parent, as before.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import operator
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.errors import CheckProcessLost, Interrupted

if TYPE_CHECKING:
    from pipeline.check.kept import Kept
    from pipeline.check.stream import CheckStream
    from pipeline.config import Settings
    from pipeline.models import Observation, Validators
    from pipeline.runreport import HostStats

log = logging.getLogger("pipeline")

_POLL = 0.2  # seconds between looks at the stop request while waiting for the checks to end
_MEANWHILE = 0.05  # seconds between hand-overs to ``finish``'s ``meanwhile`` (and looks at the stop request)
_HEADER = struct.Struct("<Q")
_SWITCH_INTERVAL = 0.0005  # seconds a thread waiting for the interpreter lock waits at most (see checkchild)


def _send(out: BinaryIO, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _wire(observations: list[Observation]) -> list[tuple[Any, ...]]:
    """The observations as the child sends them: each a tuple of its fields, in their order."""
    # Pickling the dataclasses ran Python code per observation on both sides (their state as a dict, set
    # again field by field); a tuple is pickled and unpickled in C, and rebuilt by the dataclass's __init__.
    fields = _fields()
    return [fields(obs) for obs in observations]


def _unwire(observations: list[tuple[Any, ...]]) -> list[Observation]:
    """The observations ``_wire`` sent."""
    from pipeline.models import Observation

    return [Observation(*fields) for fields in observations]


@functools.cache
def _fields() -> operator.attrgetter[tuple[Any, ...]]:
    import dataclasses

    from pipeline.models import Observation  # not at import: the parent starts the child before it needs it

    return operator.attrgetter(*(field.name for field in dataclasses.fields(Observation)))


def _receive(source: BinaryIO) -> tuple[Any, ...] | None:
    """The next message, or None at the pipe's end (a message cut short counts as the end)."""
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = source.read(size)
    if len(data) < size:
        return None
    message: tuple[Any, ...] = pickle.loads(data)
    return message


class CheckProcess:
    """``CheckStream``'s interface (``start``, ``put``, ``finish``, ``cancel``) over a child process.

    Made by ``spawn`` (the child starts at once and waits); ``start`` hands it the settings and returns once
    it takes batches.
    """

    def __init__(self) -> None:
        to_child, commands = os.pipe()
        results, from_child = os.pipe()
        home = str(Path(__file__).resolve().parents[1])  # the folder holding pipeline/, wherever it is
        self._child: subprocess.Popen[bytes] | None = None
        self._unstarted: OSError | None = None  # why no child could be started (see ``start``)
        try:
            self._child = subprocess.Popen(
                # -P: no current folder on sys.path (a queue.py where the user runs us must not run in here)
                [sys.executable, "-P", "-c", _CHILD, str(to_child), str(from_child), home],
                pass_fds=(to_child, from_child),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:  # e.g. a user dropped to who may not run this interpreter
            self._unstarted = exc
        os.close(to_child)
        os.close(from_child)
        # Only now, the child started: ``prestart`` runs first thing, and the child waits for no import here.
        from pipeline.check.kept import Kept

        self._commands: BinaryIO | None = os.fdopen(commands, "wb")
        self._results: BinaryIO = os.fdopen(results, "rb")
        if self._child is None:
            self._commands.close()
            self._commands = None
            self._results.close()
        self._lock = threading.Lock()  # one writer of the command pipe at a time
        self._reader = threading.Thread(target=self._read, name="check-results", daemon=True)
        self._ready = threading.Event()
        self._on_result: Callable[[Observation], None] | None = None
        self._host_stats: dict[str, HostStats] | None = None
        self._stop: threading.Event | None = None
        self._outcome: dict[str, Observation] | BaseException | None = None
        # Every observation the check returns is one it handed to on_result (the last one per URL, its page
        # dropped unless kept): gathered here as they come, the end's message names them instead of holding
        # them again (pickling 5,000 observations twice cost about 85 ms after the last answer).
        self._observed: dict[str, Observation] = {}
        self._arrived: deque[Observation] = deque()  # the same, in arrival order, for ``finish``'s meanwhile
        self._keep_pages = True
        self._settings: Settings | None = None
        self._unanswered: list[tuple[Any, ...]] = []  # batches sent before the child said it was ready
        self._kept: Kept = Kept(keep_pages=True)  # the kept form of each (its equal strings shared)
        self._here: CheckStream | None = None  # the check on a thread of this process, when no child started

    def start(
        self,
        settings: Settings,
        *,
        on_result: Callable[[Observation], None] | None = None,
        keep_pages: bool = True,
        host_stats: dict[str, HostStats] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Hand the child its settings (the arguments are ``CheckStream``'s); returns at once.

        The caller goes on (finds the first URLs) while the child may still be importing: batches wait in
        the pipe. A child that cannot start (it dies before it is ready) is not the end of the run: the
        check then runs here, on a thread, as it did before it had a process of its own, on every batch.
        """
        self._settings, self._on_result, self._host_stats, self._stop = settings, on_result, host_stats, stop
        self._keep_pages = keep_pages
        from pipeline.check.kept import Kept  # loaded by __init__, after the child started

        self._kept = Kept(keep_pages)
        if self._child is None:
            self._check_here(CheckProcessLost(f"the check's process could not start: {self._unstarted}"))
            return
        self._command(("start", plain(settings), keep_pages))
        self._reader.start()

    def put(
        self, urls: Sequence[str], fetch_body: Mapping[str, int], validators: Mapping[str, Validators]
    ) -> None:
        """Check these URLs too (as ``CheckStream.put``)."""
        if self._here is None and self._unready_failure() is not None:
            self._check_here(self._unready_failure())
        if self._here is not None:
            self._here.put(urls, fetch_body, validators)
        elif urls:
            self._command(("put", list(urls), dict(fetch_body), dict(validators)))

    def finish(self, meanwhile: Callable[[list[Observation]], None] | None = None) -> dict[str, Observation]:
        """No more URLs: wait for the checks to end and return every observation.

        ``meanwhile`` is handed the observations that arrived (their kept form, as returned), a list every
        twentieth of a second while the checks still run (this thread is idle then); what arrives after
        the last hand-over is only in the result. Raises ``Interrupted`` within a fifth of a second of a
        stop request (the child is cancelled), and ``CheckProcessLost`` when the child died.
        """
        if self._here is None:
            self._command(("finish",))
            while self._reader.is_alive():
                self._reader.join(_POLL if meanwhile is None else _MEANWHILE)
                if self._stop is not None and self._stop.is_set():
                    self.cancel()
                    raise Interrupted
                if meanwhile is not None and self._arrived and self._reader.is_alive():
                    arrived = self._arrived
                    meanwhile([arrived.popleft() for _ in range(len(arrived))])
            if self._unready_failure() is not None:
                self._check_here(self._unready_failure())
        self._arrived.clear()
        if self._here is not None:
            return self._here.finish()
        self._let_go()
        outcome, self._outcome = self._outcome, None
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    def _unready_failure(self) -> BaseException | None:
        """Why the child ended before it was ever ready, once the reading thread knows; else None."""
        if self._ready.is_set() or self._reader.is_alive() or not isinstance(self._outcome, BaseException):
            return None
        return self._outcome

    def _check_here(self, failure: BaseException | None) -> None:
        """No child to check: the check on a thread of this process, given every batch sent so far."""
        self._outcome = None
        self.cancel()
        log.warning("%s; checking in this process instead", failure)
        from pipeline.check.stream import CheckStream

        assert self._settings is not None
        self._here = CheckStream(
            self._settings,
            on_result=self._on_result,
            keep_pages=self._keep_pages,
            host_stats=self._host_stats,
            stop=self._stop,
        )
        self._here.start()
        for _, urls, fetch_body, validators in self._unanswered:
            self._here.put(urls, fetch_body, validators)
        self._unanswered.clear()

    def cancel(self) -> None:
        """Stop checking now: the child sees its command pipe end and exits; idempotent."""
        if self._here is not None:
            self._here.cancel()
        self._close_commands()
        if self._child is None:
            return
        self._reap()
        if self._reader.ident is not None:
            self._reader.join()
        else:
            self._results.close()

    def _let_go(self) -> None:
        """After the child's last message: its pipes closed; it exits by itself, reaped on a thread meanwhile
        (the run's tail waited 5-8 ms for its exit, the kernel tearing down its heap)."""
        self._close_commands()
        if self._reader.ident is not None:
            self._reader.join()
        if self._child is not None:
            threading.Thread(target=self._reap, name="check-reaper", daemon=True).start()

    def _reap(self) -> None:
        assert self._child is not None
        try:
            self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck (it exits at once when it sees the pipe end)
            self._child.kill()
            self._child.wait()

    def _close_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, None
        if commands is not None:
            with contextlib.suppress(OSError):  # the child is gone already: nothing it still needed
                commands.close()

    def _command(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            if message[0] == "put" and not self._ready.is_set():
                self._unanswered.append(message)  # checked here if the child never gets ready
            if self._commands is None:
                return  # cancelled, or the child is gone (the reading thread says why)
            try:
                _send(self._commands, message)
            except OSError:  # the child is gone (the reading thread says why): nothing more to send
                commands, self._commands = self._commands, None
                with contextlib.suppress(OSError):
                    commands.close()

    def _read(self) -> None:
        """The reading thread: observations to ``on_result`` as they come, then the outcome."""
        try:
            self._outcome = self._relay()
        except BaseException as exc:  # on_result failed, or a message could not be read: to finish()
            self._outcome = exc
            self._close_commands()
        finally:
            self._results.close()

    def _relay(self) -> dict[str, Observation] | BaseException:
        while True:
            message = _receive(self._results)
            if message is None:
                assert self._child is not None  # no reading thread runs without one
                code = self._child.wait()
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                return CheckProcessLost(f"the check's process {how} before the checks ended")
            kind = message[0]
            if kind == "ready":
                with self._lock:
                    self._ready.set()
                    self._unanswered.clear()
            elif kind == "observations":
                for obs in _unwire(message[1]):
                    if self._on_result is not None:
                        self._on_result(obs)
                    kept = self._observed[obs.url] = self._kept(obs)
                    self._arrived.append(kept)
            elif kind == "done":
                if self._host_stats is not None:
                    self._host_stats.update(message[2])
                observed, self._observed = self._observed, {}
                if observed.keys() != message[1]:
                    raise RuntimeError("the check's process returned observations it never sent")
                return observed
            else:  # "error": what the check ended with, and where (a pickled error keeps no frames)
                error: BaseException = message[1]
                error.add_note(f"in the check's process:\n{message[2]}")
                return error


def plain(value: Any) -> Any:
    """Settings as the child reads them: each model a ``SimpleNamespace`` of its fields' values and its own
    properties (``http.agent``), lists and dicts of those, other values as they are.

    The check reads its settings and never builds them; unpickling the models would load pydantic and the
    settings' models in the child (60-80 ms of its start-up, before its first request). The values are the
    model's own, so every setting keeps its one definition (and its default) in ``pipeline.config``.
    """
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict):
        names = [*fields]
        for cls in type(value).__mro__:
            if not cls.__module__.startswith(("pydantic", "builtins")):
                names.extend(name for name, member in vars(cls).items() if isinstance(member, property))
        return SimpleNamespace(**{name: plain(getattr(value, name)) for name in names})
    if isinstance(value, list | tuple):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


_early: list[CheckProcess] = []  # started by ``prestart``, taken by the next ``spawn``


def prestart() -> None:
    """Start a check process now for this process's next ``spawn`` to take (its imports then run while
    the command line starts up). One left untaken is stopped when this process exits."""
    if not _early:
        _early.append(CheckProcess())
        atexit.register(_stop_untaken)


def spawn() -> CheckProcess:
    """A check process: the one ``prestart`` started, else one started now; ``start`` it with the settings."""
    return _early.pop() if _early else CheckProcess()


def discard_prestarted() -> None:
    """Stop the check process ``prestart`` started, if no ``spawn`` took it: a run whose checks go to
    Celery workers needs none, and its imports would only take CPU from the run and the workers."""
    _stop_untaken()


def _stop_untaken() -> None:
    while _early:
        untaken = _early.pop()
        if untaken._child is not None:
            untaken._child.kill()  # it may still be importing: not worth waiting for
        untaken.cancel()


# SIGINT and SIGTERM are ignored before anything is imported: a Ctrl-C while the child starts up must not
# print a traceback (an ignored SIGINT also keeps Python from installing its KeyboardInterrupt handler).
# The folder holding this pipeline/ goes first on sys.path unless it is there already (an installed
# package's site-packages must stay behind the standard library). httpx imports its own command line (click,
# rich, pygments: 30 ms of the child's start-up) when they are installed, as they are here for ours; a None
# in sys.modules makes that import fail as if they were not, and httpx then defines a stub instead. This
# process never runs httpx's command line.
_CHILD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.modules['httpx._main'] = None; "
    "sys.path.insert(0, sys.argv[3]) if sys.argv[3] not in sys.path else None; "
    "from pipeline.checkchild import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)

__all__ = ["CheckProcess", "prestart", "spawn"]
