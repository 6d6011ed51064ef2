"""A real RabbitMQ broker for the tests: Debian's ``rabbitmq-server`` in a temporary folder, on loopback.

Everything the node writes (its database, logs, the Erlang cookie under ``HOME``) stays in the folder, and
its ports are free ones: the AMQP listener on 127.0.0.1, the node's distribution port and its own Erlang
port mapper (``ERL_EPMD_PORT``), which is stopped with the node, so nothing is left behind and a RabbitMQ
the machine may run is never touched. The schedulers do not busy-wait, which on a two-core machine would
take CPU from the workers under test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from pipeline.tools.cluster import free_port

_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's; /usr/sbin's wrapper changes user
_READY_TIMEOUT = 60.0  # an Erlang node takes 5-10 s to boot on a slow machine
_QUIET_SCHEDULERS = "+sbwt none +sbwtdcpu none +sbwtdio none"


class RabbitServer:
    """One RabbitMQ node listening for AMQP on 127.0.0.1:``port``, its files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self._dist_port, self._epmd_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL, as ``celery.broker_url`` takes it (the default ``guest`` user, loopback only)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _environment(self) -> dict[str, str]:
        base = self.folder
        return {
            **os.environ,
            "HOME": str(base),  # the Erlang cookie
            "RABBITMQ_NODENAME": f"pipeline-test-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": str(base / "log" / "rabbit.log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _QUIET_SCHEDULERS,
        }

    def log(self) -> str:
        """The node's log (the end of it)."""
        path = self.folder / "log" / "rabbit.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def start(self) -> RabbitServer:
        """Start the node and wait until its AMQP port accepts connections; returns self."""
        (self.folder / "log").mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        self.process = subprocess.Popen(
            [str(_SERVER)],
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends the node and its helpers
        )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"rabbitmq-server exited with {code}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not listen on {self.port} within {_READY_TIMEOUT} s")

    def stop(self) -> None:
        """Stop the node (SIGTERM to its process group, SIGKILL after 15 s) and its port mapper."""
        if self.process is not None:
            with suppress(ProcessLookupError):  # the node already gone
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):  # the node already gone
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        # The node starts its port mapper as a daemon, outside the process group.
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run([epmd, "-port", str(self._epmd_port), "-kill"], capture_output=True, check=False)


def rabbit_available() -> None:
    """Skips the test when RabbitMQ is missing, except under CI=true where it fails."""
    if not _SERVER.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmq-server is missing; .ci/run installs the rabbitmq-server package")
        pytest.skip("rabbitmq-server is not installed")


@contextmanager
def rabbit_server() -> Iterator[RabbitServer]:
    """Start a node in a new temporary folder on 127.0.0.1; yield it; stop it and remove the folder."""
    rabbit_available()
    folder = Path(tempfile.mkdtemp(prefix="pipeline-rabbitmq-"))
    server = RabbitServer(folder)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
