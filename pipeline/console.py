"""What a person or a log collector sees: logging setup, and a progress bar for interactive runs.

Reads: the ``logging`` settings (``format``: text | json, ``level``) and ``--quiet``; whether stderr is a
terminal. Returns nothing: ``setup_logging`` configures the root logger to write to stderr, one line per
record (JSON lines for journald and collectors); ``Progress`` shows a rich bar with URLs/s and ETA only when
stderr is a terminal and the run is not quiet, and is silent otherwise (cron, systemd, pipes).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.text import json_text, printable

if TYPE_CHECKING:  # rich is loaded only for a bar that is shown (about 20 ms of every command's start-up)
    from rich.console import Console
    from rich.progress import Progress as _RichProgress
    from rich.progress import TaskID

# Libraries that log every request or job at INFO; our own summary lines say what matters.
_NOISY_LOGGERS = ("httpx", "httpcore", "aiohttp", "apscheduler", "filelock", "asyncio")
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time, so rich can route log lines above its bar."""

    _pipeline_owned = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _utc_stamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _printable_lines(text: str) -> str:
    """Text that keeps its line breaks; anything inside a line (a file name, a reason) is escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _exception_text(ei: Any) -> str:
    """A traceback with its frame lines kept, and each exception's message (which may hold a newline from
    a file name or the web) escaped onto its one line, so it cannot forge a log line."""
    root = traceback.TracebackException(ei[0], ei[1], ei[2])
    messages: set[str] = set()
    pending = [root]
    while pending:
        exc = pending.pop()
        messages.update(exc.format_exception_only())
        pending += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    return "\n".join(
        printable(chunk.removesuffix("\n"))
        if chunk in messages
        else _printable_lines(chunk.removesuffix("\n"))
        for chunk in root.format()
    )


class _TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, escaped: no file name or web text reaches the terminal raw."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_stamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(vars(record))  # other handlers (pytest's, say) still get the original
        safe.msg, safe.args, safe.name = printable(record.getMessage()), None, printable(record.name)
        # Another handler may have cached the raw traceback text on the record: format it again, escaped.
        safe.exc_text = None if record.exc_info else record.exc_text and _printable_lines(record.exc_text)
        return super().format(safe)

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)

    def formatStack(self, stack_info: str) -> str:
        return _printable_lines(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, any ``extra=`` fields, and the traceback.

    Text is escaped as in the text format: a collector that prints the message must not get raw controls.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_stamp(record.created),
            "level": record.levelname,
            "logger": printable(record.name),
            "message": printable(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = printable(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = _exception_text(record.exc_info)
        return json_text(json.dumps(entry, ensure_ascii=False, default=lambda value: printable(str(value))))


def setup_logging(fmt: str, level: str, quiet: bool) -> None:
    """Send log records to stderr as text or JSON lines; ``quiet`` keeps only warnings and errors.

    Calling it again replaces the handler it installed before (tests and the daemon may call it twice).
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"logging.format: {fmt!r} is not text or json")
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"logging.level: {level!r} is not a level name")
    if quiet:
        numeric = max(numeric, logging.WARNING)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_pipeline_owned", False)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def _rich_bar(console: Console) -> _RichProgress:
    """rich's live bar with our columns (rich imported here: only a run that shows a bar needs it)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """URLs per second over rich's recent-speed window (the final average once finished)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("– URLs/s" if speed is None else f"{speed:,.1f} URLs/s", style="progress.data.speed")

    return RichProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _may_be_terminal() -> bool:
    """False when rich would surely call stderr no terminal (it is none, and neither TTY_COMPATIBLE=1 nor
    a FORCE_COLOR says otherwise): the bar is then off without loading rich to ask it."""
    return (
        sys.stderr.isatty() or os.environ.get("TTY_COMPATIBLE") == "1" or bool(os.environ.get("FORCE_COLOR"))
    )


class Progress:
    """A progress bar for interactive runs; silent when stderr is not a terminal or the run is quiet.

    ``start(total, label)`` begins a phase (a new bar line), ``advance(n)`` counts finished items,
    ``close()`` removes the live display. Also a context manager. Safe to call from the thread that runs
    the check: rich serialises updates with a lock.
    """

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        if console is None and not quiet and _may_be_terminal():
            from rich.console import Console

            console = Console(stderr=True)
        self._console = console
        self.enabled = not quiet and console is not None and console.is_terminal
        self._bar: _RichProgress | None = None
        self._task: TaskID | None = None
        self.completed = 0
        self.total = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, total: int, label: str) -> None:
        """Begin a phase of ``total`` items; the previous phase's bar stays on screen, finished."""
        self.completed = 0
        self.total = total
        if not self.enabled:
            return
        if self._bar is None:
            assert self._console is not None  # enabled
            self._bar = _rich_bar(self._console)
            self._bar.start()
        elif self._task is not None:
            self._bar.stop_task(self._task)
        self._task = self._bar.add_task(label, total=total)

    def set_total(self, total: int) -> None:
        """The current phase's total, as it becomes known (a check fed while the read pass runs)."""
        self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more finished items in the current phase."""
        self.completed += n
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        """Stop the live display (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None


def print_diff(out: TextIO, path: Path, old: bytes, new: bytes) -> None:
    """The dry run's unified diff of one article, coloured like `git diff` on a terminal."""
    old_lines = old.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    name = printable(path)
    diff = difflib.unified_diff(old_lines, new_lines, f"a/{name}", f"b/{name}")
    # A web value may hold controls; each diff line stays one line of printable text on the terminal.
    lines = [printable(line.rstrip("\r\n")) + "\n" for line in diff]
    out.writelines(_colored(lines) if _wants_color(out) else lines)


# ANSI colours of `git diff`: bold headers, cyan hunks, red removals, green additions.
_DIFF_COLORS = (
    ("+++", "\x1b[1m"),
    ("---", "\x1b[1m"),
    ("@@", "\x1b[36m"),
    ("+", "\x1b[32m"),
    ("-", "\x1b[31m"),
)


def _wants_color(out: TextIO) -> bool:
    """Colour on a terminal only (never in a pipe or a file), and never when NO_COLOR is set."""
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _colored(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        color = next((code for prefix, code in _DIFF_COLORS if line.startswith(prefix)), None)
        if color is None:
            yield line
        else:
            body = line.rstrip("\r\n")
            yield f"{color}{body}\x1b[0m{line[len(body) :]}"
