"""A whole distributed setup on one machine for trying it (``make workers N=3``) and for benchmarks.

Starts, on loopback only, a PostgreSQL server (the shared history; its data kept in ``FOLDER/postgres``
across starts), a Redis server (the broker; no persistence: a queue left over from an earlier session is
worth nothing) and N ``pipeline worker`` processes, and writes ``FOLDER/pipeline.yaml``: the base
configuration with ``executor: celery``, ``celery.broker_url`` and ``state.url`` pointing at them and its
state and reports folders moved into FOLDER, so a trial never mixes with the nightly job's SQLite history.
Ctrl-C (or SIGTERM) stops the workers (a warm shutdown, then SIGKILL: late acknowledgement makes an
unfinished task come back), then Redis, then PostgreSQL.

Reads no settings itself beyond the base configuration file it copies; imported only by
``python -m pipeline.tools.cluster`` and the worker benchmark.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

_READY_TIMEOUT = 30.0
_WORKER_GRACE = 15.0  # seconds a worker gets to finish its current task on Ctrl-C before SIGKILL


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_pg_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _pg_binaries() -> Path:
    binaries = find_pg_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql")
    return binaries


class Postgres:
    """A PostgreSQL server in ``folder`` on 127.0.0.1 (trust auth, user ``pipeline``, database ``pipeline``).

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
    """

    def __init__(self, folder: Path) -> None:
        self.folder, self.data = folder, folder / "data"
        self.binaries = _pg_binaries()
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The ``state.url`` of the history database."""
        return f"postgresql://pipeline@127.0.0.1:{self.port}/pipeline"

    def _run(self, *arguments: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(argument) for argument in arguments],
            user=self._user,
            check=check,
            capture_output=True,
            text=True,
        )

    def start(self) -> Postgres:
        """initdb on first use, start on a free port, create the database; returns self."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            shutil.chown(self.folder, self._user)
        if (self.data / "postmaster.pid").exists():  # left by a session that was killed: stop it first
            self._run(self.binaries / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                self.binaries / "initdb", "-D", self.data, "-U", "pipeline", "--auth=trust", "-E", "UTF8"
            )
        # TCP on loopback only, no Unix socket (its path could be too long in a deep checkout).
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        log = self.folder / "log"
        started = self._run(
            self.binaries / "pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "start", check=False
        )
        if started.returncode != 0:
            raise SystemExit(f"PostgreSQL did not start (see {log}): {started.stderr.strip()}")
        with psycopg.connect(
            f"postgresql://pipeline@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'pipeline'").fetchone() is None:
                admin.execute("CREATE DATABASE pipeline")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, committed data kept)."""
        self._run(self.binaries / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)


class Redis:
    """A ``redis-server`` in ``folder`` on 127.0.0.1, without persistence."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``celery.broker_url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        """Start and wait until it accepts connections; returns self."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
                "--save", "", "--appendonly", "no", "--logfile", str(self.folder / "redis.log"),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, self.process, "redis-server", self.folder / "redis.log")
        return self

    def stop(self) -> None:
        """Stop the server; a no-op when it is not running."""
        if self.process is not None:
            _terminate(self.process, 10.0)
            self.process = None


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} (see {log})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on 127.0.0.1:{port} within {_READY_TIMEOUT:.0f} s (see {log})")


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_config(path: Path, base: Path | None, broker_url: str, state_url: str, **celery: object) -> Path:
    """``base``'s settings (or the built-in defaults) with the celery executor pointed at the servers."""
    data: dict[str, Any] = {}
    if base is not None:
        data = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    data["executor"] = "celery"
    data["celery"] = {**(data.get("celery") or {}), "broker_url": broker_url, **celery}
    data["state"] = {**(data.get("state") or {}), "url": state_url, "dir": str(path.parent / "state")}
    data["reports"] = {**(data.get("reports") or {}), "dir": str(path.parent / "reports")}
    header = "# Written by pipeline.tools.cluster (make workers): rewritten on every start.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Workers:
    """``count`` ``pipeline worker`` processes on ``config``, each logging to ``logs/worker-N.log``."""

    def __init__(self, config: Path, logs: Path, count: int, options: list[str]) -> None:
        self.config, self.logs, self.count, self.options = config, logs, count, options
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start_one(self, index: int) -> subprocess.Popen[bytes]:
        """Start worker ``index`` (named ``worker<index>@<host>``)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pipeline", "worker", "--config", str(self.config),
            "-n", f"worker{index}@%h", *self.options,
        ]  # fmt: skip
        with open(self.logs / f"worker-{index}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[index] = process
        return process

    def start(self) -> Workers:
        """Start all of them; returns self."""
        for index in range(1, self.count + 1):
            self.start_one(index)
        return self

    def stop(self) -> None:
        """Warm shutdown of every worker at once, SIGKILL for those still busy after the grace."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + _WORKER_GRACE
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _serve(folder: Path, base: Path | None, count: int, options: list[str]) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    folder.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(folder / "postgres").start()
    redis: Redis | None = None
    workers: Workers | None = None
    try:
        redis = Redis(folder / "redis").start()
        config = write_config(folder / "pipeline.yaml", base, redis.url, postgres.url)
        workers = Workers(config, folder / "logs", count, options).start()
        shown = config.relative_to(Path.cwd()) if config.is_relative_to(Path.cwd()) else config
        print(
            f"PostgreSQL {postgres.url}\nRedis      {redis.url}\n"
            f"{count} workers, logs in {folder / 'logs'}/\n\n"
            f"In another terminal:\n  .venv/bin/pipeline refresh --config {shown}\n\n"
            "Ctrl-C stops the workers, Redis and PostgreSQL.",
            flush=True,
        )
        while not stop.wait(1.0):
            if redis.process is not None and redis.process.poll() is not None:
                print("redis-server stopped by itself; stopping everything", file=sys.stderr)
                return 1
            for index, process in list(workers.processes.items()):
                if process.poll() is not None:
                    print(
                        f"worker{index} exited with {process.returncode}; see {folder / 'logs'}/",
                        file=sys.stderr,
                    )
                    del workers.processes[index]
        print("stopping the workers, Redis and PostgreSQL …", flush=True)
        return 0
    finally:
        if workers is not None:
            workers.stop()
        if redis is not None:
            redis.stop()
        postgres.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.tools.cluster [--workers N] [--folder F] [--config BASE] [-- WORKER OPTIONS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    parser.add_argument("--folder", type=Path, default=Path(".cluster"), help="where everything lives")
    parser.add_argument(
        "--config", type=Path, default=Path("config/pipeline.yaml"), help="base configuration"
    )
    parser.add_argument("worker_options", nargs="*", help="passed to every `pipeline worker` (after --)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    base = args.config if args.config.exists() else None
    # INFO: the worker logs say which shard each checked; a later --loglevel in the options wins.
    options = ["--loglevel", "INFO", *args.worker_options]
    return _serve(args.folder.resolve(), base, args.workers, options)


if __name__ == "__main__":
    sys.exit(main())
