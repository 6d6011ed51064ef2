"""A real Redis server for the tests: ``redis-server`` in a temporary folder, on a free loopback port.

No persistence (no RDB snapshots, no append-only file), so a stopped server comes back empty, as a broker
that lost its memory would. A test that takes the broker away mid-run calls :meth:`RedisServer.stop` and
:meth:`RedisServer.start` (the same port again) or :meth:`RedisServer.kill` (SIGKILL, no goodbye).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.tools.cluster import free_port

_READY_TIMEOUT = 10.0


def _command(port: int, line: bytes) -> bytes:
    """Send one inline command to the server on ``port``; return its first reply line (raises OSError)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(line + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply.strip()


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:``port``, its files in ``folder``."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._started = False  # once started, a restart keeps the port (clients hold its URL)

    @property
    def url(self) -> str:
        """The broker URL of database 0, as ``celery.broker_url`` takes it."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_url(self) -> str:
        """The same server on its Unix socket (``redis+socket://``), for a client without a network."""
        return f"redis+socket://{self.folder / 'redis.sock'}"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) and wait until it answers PING; returns self."""
        try:
            return self._start()
        except RuntimeError:
            if self._started or "Address already in use" not in self.log():
                raise
            self.port = free_port()  # another process took the free port first: once more on a new one
            return self._start()

    def log(self) -> str:
        """The server's log (the end of it)."""
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _start(self) -> RedisServer:
        arguments = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--logfile", str(self.folder / "redis.log"),
            "--unixsocket", str(self.folder / "redis.sock"),
            "--unixsocketperm", "700",
        ]  # fmt: skip
        self.process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"redis-server exited with {code}: {self.log()}")
            try:
                if _command(self.port, b"PING") == b"+PONG":
                    self._started = True
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {_READY_TIMEOUT} s")

    def flush(self) -> None:
        """Forget every key (between tests sharing one server)."""
        if _command(self.port, b"FLUSHALL") != b"+OK":
            raise RuntimeError("redis FLUSHALL failed")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); a no-op when it is not running."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crashed broker host would vanish."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None


def redis_binary() -> str:
    """The ``redis-server`` on PATH; skips the test when missing, except under CI=true where it fails."""
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing; .ci/run installs the redis-server package")
        pytest.skip("redis-server is not installed")
    return found


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a server in a new temporary folder on 127.0.0.1; yield it; stop it and remove the folder."""
    binary = redis_binary()
    folder = Path(tempfile.mkdtemp(prefix="pipeline-redis-"))
    server = RedisServer(binary, folder)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
