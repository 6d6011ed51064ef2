"""Running a test step as an unprivileged user: tests run as root, whom file permissions do not bind."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


def run_unprivileged(task: Callable[[], str]) -> str:
    """Run ``task`` in a forked child as `nobody` when we are root (permissions do not bind root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(write_end, task().encode())
        except BaseException as exc:
            os.write(write_end, f"child failed: {exc!r}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        output = pipe.read()
    os.waitpid(pid, 0)
    return output


_RUN_MODULES = (
    "pipeline.__main__",
    "pipeline.cli",
    "pipeline.runner",
    "pipeline.lock",
    "pipeline.health.history",
    "pipeline.report.render",
    "pipeline.report.runs",
    "pipeline.scheduler",
    "jsonschema",
    "json",
    "encodings.idna",
)


def run_cli_unprivileged(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the real command line (``pipeline ARGS``) in a forked child as `nobody`: (exit code, out, err).

    The interpreter lives under /root, which `nobody` cannot execute, so the child is a fork of this
    process that drops its privileges and then runs the same entry point as the console script.
    """
    out_path, err_path = cwd / ".cli-stdout", cwd / ".cli-stderr"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves through os._exit
        try:
            os.chdir(cwd)
            for fd, path in ((1, out_path), (2, err_path)):
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                os.dup2(target, fd)
                os.close(target)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            # `nobody` cannot read the standard library under /root either: import what a run needs first.
            for module in _RUN_MODULES:
                importlib.import_module(module)
            # Nor a checkout in a private folder (`mktemp -d`): the report templates are read now too.
            importlib.import_module("pipeline.report.render").prepare()
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            sys.argv = ["pipeline", *args]
            from pipeline.__main__ import run

            run()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    out, err = out_path.read_text(encoding="utf-8"), err_path.read_text(encoding="utf-8")
    out_path.unlink()
    err_path.unlink()
    return code, out, err
