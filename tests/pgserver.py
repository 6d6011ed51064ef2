"""A real PostgreSQL server for the tests: initdb in a temporary folder, listening on loopback only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.tools.cluster import find_pg_binaries, free_port


def postgres_binaries() -> Path:
    """The folder of initdb and pg_ctl; skips the test when missing, except under CI=true: there it fails."""
    binaries = find_pg_binaries()
    if binaries is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is missing; .ci/run installs the postgresql package")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    return binaries


class PostgresServer:
    """A running server (see :func:`postgres_instance`); ``stop`` and ``start`` take it away and back."""

    def __init__(self, binaries: Path, folder: Path, user: str | None) -> None:
        self.binaries, self.folder, self.user = binaries, folder, user
        self.data, self.port = folder / "data", free_port()

    @property
    def url(self) -> str:
        """The server's base URL (append ``/dbname``)."""
        return f"postgresql://pipeline@127.0.0.1:{self.port}"

    def _pg_ctl(self, *arguments: object, check: bool = True) -> None:
        subprocess.run(  # type: ignore[call-overload]
            [self.binaries / "pg_ctl", "-D", self.data, *arguments],
            user=self.user,
            check=check,
            capture_output=True,
            text=True,
        )

    def start(self) -> None:
        """Start (again) on the same port."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._pg_ctl("-o", options, "-l", self.folder / "log", "-w", "start")

    def stop(self) -> None:
        """Stop at once (immediate shutdown: every connection is cut, as when the database host goes away)."""
        self._pg_ctl("-m", "immediate", "-w", "stop", check=False)


@contextmanager
def postgres_instance() -> Iterator[PostgresServer]:
    """Start a server in a new temporary folder on 127.0.0.1 (trust auth, user ``pipeline``); yield it;
    stop it and remove the folder afterwards.

    Missing binaries skip the test (see :func:`postgres_binaries`).
    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
    """
    binaries = postgres_binaries()
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))  # directly in /tmp: pytest's are root's 0700
    if user is not None:
        shutil.chown(folder, user)
    server = PostgresServer(binaries, folder, user)
    subprocess.run(  # type: ignore[call-overload]
        [binaries / "initdb", "-D", server.data, "-U", "pipeline", "--auth=trust", "-E", "UTF8"],
        user=user,
        check=True,
        capture_output=True,
        text=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """:func:`postgres_instance`, yielding only its base URL."""
    with postgres_instance() as server:
        yield server.url
