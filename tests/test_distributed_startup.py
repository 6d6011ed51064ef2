"""executor: celery: what the coordinator does before its first shard leaves, and what it leaves out."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from localsite import make_settings

from pipeline import checkprocess, runner
from pipeline.configfile import parse_settings
from pipeline.distributed import prepared
from pipeline.distributed.app import build_app
from pipeline.distributed.coordinator import _Dispatch
from pipeline.engineconfig import CelerySettings
from pipeline.models import RunOptions


def _loaded(probe: str) -> list[str]:
    """What a fresh interpreter running ``probe`` prints (no test sitecustomize)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return done.stdout.split()


def test_the_coordinators_app_loads_neither_the_http_stack_nor_the_workers_task() -> None:
    """The coordinator's app (it only sends) loads no aiohttp, httpx or task module; a worker's app loads
    the task module at once, before its pool processes fork."""
    probe = (
        "import sys; from pipeline.distributed.app import build_app; "
        "from pipeline.engineconfig import CelerySettings; "
        "build_app(CelerySettings(broker_url='redis://127.0.0.1:9/0'), {url}); "
        "heavy = ('aiohttp', 'httpx', 'redis', 'pipeline.check.http', 'pipeline.distributed.tasks'); "
        "print(' '.join(name for name in heavy if name in sys.modules))"
    )
    assert _loaded(probe.format(url="None")) == []
    assert "pipeline.distributed.tasks" in _loaded(probe.format(url="'postgresql://127.0.0.1:9/h'"))


def test_the_prepared_dispatch_loads_celery_on_its_own_thread() -> None:
    """Importing the prepared dispatch (the run's own thread does, before its read pass) loads no Celery,
    Kombu or psycopg: its thread loads them beside the read."""
    probe = (
        "import sys; import pipeline.distributed.prepared; "
        "print(' '.join(name for name in ('celery', 'kombu', 'pipeline.distributed.coordinator')"
        " if name in sys.modules))"
    )
    assert _loaded(probe) == []


def _prestarts(*args: str) -> bool:
    """Whether ``python -m pipeline ARGS`` starts a check process before its command line's imports."""
    probe = (
        "import runpy, sys; import pipeline.checkprocess as c; "
        "c.prestart = lambda: print('PRESTART', flush=True); "
        f"sys.argv = ['pipeline', *{list(args)!r}]; runpy.run_module('pipeline', run_name='__main__')"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    return "PRESTART" in done.stdout


def test_a_run_on_celery_workers_starts_no_local_check_process(tmp_path: Path) -> None:
    """`--executor celery` starts no check process ahead (the workers check); without it one is started;
    a config's `executor: celery` stops the one started ahead once the settings say so."""
    missing = str(tmp_path / "missing.yaml")  # the command stops at its config: only the start-up runs
    assert _prestarts("refresh", "--config", missing)
    assert not _prestarts("refresh", "--executor", "celery", "--config", missing)
    assert not _prestarts("refresh", "--executor=celery", "--config", missing)

    data = make_settings(tmp_path).model_dump(mode="json")
    data["executor"] = "celery"
    data["celery"] = {"broker_url": "redis://127.0.0.1:9/0", "wait_timeout": 1}
    data["state"]["url"] = "postgresql://127.0.0.1:9/history"
    checkprocess.prestart()
    assert checkprocess._early
    made = runner._prepare_remote(parse_settings(data), RunOptions(show_progress=False))
    assert made is not None
    made.close()
    assert not checkprocess._early


def test_the_runs_own_work_meanwhile_starts_once_the_shards_are_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared dispatch's ``meanwhile`` work (the report templates) waits for the first send, then
    runs once, on a thread of its own."""

    class Ready:  # a dispatch made ready: what take() and close() call of it
        def watch(self, stop: object) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(prepared, "_ready", lambda settings, stop: (Ready(), 1))
    threads: list[str] = []
    done = threading.Event()

    def meanwhile() -> None:
        threads.append(threading.current_thread().name)
        done.set()

    made = prepared.Prepared(make_settings(tmp_path), None, meanwhile=meanwhile)
    made.take()
    assert threads == []
    made.sent()
    assert done.wait(10)
    made.sent()
    assert threads == ["meanwhile"]
    made.close()


def test_counting_the_workers_does_not_wait_for_its_broker_connection_to_close(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' count returns as soon as its window ends: the connection that collected the answers
    is closed on another thread (closing it waits for the reply queue's last poll)."""
    real_release = Connection.release
    closing = threading.Event()
    may_close = threading.Event()

    def release(self: Connection, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "broker-close":
            closing.set()
            may_close.wait(30)
        return real_release(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "release", release)
    dispatch = _Dispatch.__new__(_Dispatch)
    dispatch.celery = CelerySettings(broker_url=redis_url, wait_timeout=5)
    dispatch.app = build_app(dispatch.celery, None)
    dispatch.job = "a-dispatch"
    try:
        assert dispatch._processes() == 0  # no worker: none answered within the window
        assert closing.wait(10) and not may_close.is_set()  # its connection is still being closed
    finally:
        may_close.set()
        dispatch.app.close()
