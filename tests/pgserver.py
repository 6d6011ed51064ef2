"""A real PostgreSQL server for the tests: initdb in a temporary folder, listening on loopback only."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server in a new temporary folder on 127.0.0.1 (trust auth, user ``pipeline``); yield its
    base URL; stop it and remove the folder afterwards.

    Missing binaries skip the test, except under CI=true where `.ci/run` installs them: there it fails.
    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
    """
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is missing; .ci/run installs the postgresql package")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))  # directly in /tmp: pytest's are root's 0700
    if user is not None:
        shutil.chown(folder, user)
    data, port = folder / "data", _free_port()
    run = {"user": user, "check": True, "capture_output": True, "text": True}
    subprocess.run(  # type: ignore[call-overload]
        [binaries / "initdb", "-D", data, "-U", "pipeline", "--auth=trust", "-E", "UTF8"], **run
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run(  # type: ignore[call-overload]
        [binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log", "-w", "start"], **run
    )
    try:
        yield f"postgresql://pipeline@127.0.0.1:{port}"
    finally:
        subprocess.run(  # type: ignore[call-overload]
            [binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], **{**run, "check": False}
        )
        shutil.rmtree(folder, ignore_errors=True)
