"""Real `pipeline worker` processes for the tests: started with subprocess, killed in teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import yaml
from celery import Celery
from localsite import make_settings

from pipeline.config import Settings
from pipeline.configfile import parse_settings

_READY_S = 60.0


class NoProgress:
    """A progress bar that shows nothing, for calling the coordinator directly."""

    def advance(self, n: int = 1) -> None:
        pass


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database called ``name`` on the PostgreSQL server at ``server_url``; its URL."""
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"


def celery_settings(folder: Path, broker_url: str, state_url: str, **celery: object) -> Settings:
    """A coordinator's settings on that broker and database: 2 requests per host, no soft-404 probe."""
    data = make_settings(folder, http={"per_host_concurrency": 2, "soft404_probe": False}).model_dump(
        mode="json"
    )
    data["executor"] = "celery"
    data["celery"] = {"broker_url": broker_url, **celery}
    data["state"]["url"] = state_url
    return parse_settings(data)


def worker_config(folder: Path, broker_url: str, state_url: str, **celery: object) -> Path:
    """A worker's config file: only celery.* and state.url matter to it."""
    path = folder / "worker.yaml"
    data = {"celery": {"broker_url": broker_url, **celery}, "state": {"url": state_url}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def answering(broker_url: str, timeout: float = 1.0) -> int:
    """How many workers answer a ping on the broker now."""
    app = Celery("probe", broker=broker_url, set_as_current=False)
    try:
        return len(app.control.ping(timeout=timeout))
    finally:
        app.close()


@contextmanager
def workers(
    config: Path, count: int, cwd: Path, *extra: str, prefix: tuple[str, ...] = ()
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes (one prefork child each), all answering pings; killed on exit.

    ``prefix``: a command the workers run under (``unshare -n``: a network namespace of their own)."""
    broker = yaml.safe_load(config.read_text(encoding="utf-8"))["celery"]["broker_url"]
    logs = [(cwd / f"worker{index}.log").open("wb") for index in range(count)]
    procs = [
        subprocess.Popen(
            [*prefix, sys.executable, "-m", "pipeline", "worker", "--config", str(config),
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO", "-n", f"w{index}@%h",
             "--without-heartbeat", "--without-gossip", "--without-mingle", *extra],
            cwd=cwd,
            stdout=logs[index],
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown kills the pool children too
        )
        for index in range(count)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + _READY_S
        while answering(broker) < count:
            dead = [p.args for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(
                    (cwd / f"worker{i}.log").read_text(errors="replace")[-1500:] for i in range(count)
                )
                raise RuntimeError(f"workers did not start: {logs}")
            time.sleep(0.2)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for log in logs:
            log.close()
